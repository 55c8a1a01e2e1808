"""Convert a released Panoptic SegFormer checkpoint for this plugin.

The authors released five models (R-50 1x/2x, R-101 2x, PVTv2-B5 2x, Swin-L
2x) as mmcv 1.x checkpoints of their own code. This script renames every
key for ``PanopticSegFormerCVPR22`` (backbone keys of PVTv2 and Swin through
mmdet's ``pvt_convert`` / ``swin_converter``), drops only the two branches
that are never used (``reg_branches2``, ``cls_thing_branches``), refuses
any other key by name and writes an mmengine checkpoint whose
``meta.dataset_meta`` holds the COCO panoptic classes in mmdet's order.

Example::

    python tools/model_converters/panoptic_segformer_cvpr22_to_mmdet.py \\
        panoptic_segformer_r50_2x.pth r50_2x_mmdet.pth \\
        --config configs/panoptic_segformer/\\
panoptic-segformer-cvpr22_r50_8xb1-24e_coco-panoptic.py
"""
import argparse
import pickle
from pathlib import Path
from typing import Optional

import torch

BACKBONES = ('ResNet', 'PyramidVisionTransformerV2', 'SwinTransformer')


def read_checkpoint(path: str, unsafe_load: bool = False) -> dict:
    """The released file as a dict with ``state_dict`` (and ``meta``).

    torch's safe loading (``weights_only=True``) is used unless
    ``unsafe_load``: an mmcv 1.x checkpoint normally holds only tensors,
    strings, numbers, tuples and dicts, which it accepts.
    """
    try:
        checkpoint = torch.load(path, map_location='cpu',
                                weights_only=not unsafe_load)
    except pickle.UnpicklingError as error:
        raise RuntimeError(
            f'{path}: torch refused to load it safely ({error}). If you '
            'trust the file, rerun with --unsafe-load.') from error
    if not isinstance(checkpoint, dict):
        raise ValueError(f'{path}: expected a checkpoint dict, got '
                         f'{type(checkpoint).__name__}')
    if 'state_dict' not in checkpoint:
        if all(isinstance(v, torch.Tensor) for v in checkpoint.values()):
            checkpoint = dict(state_dict=checkpoint)
        else:
            raise ValueError(f'{path}: no state_dict entry (keys: '
                             f'{sorted(checkpoint)[:10]})')
    return checkpoint


def build_model(config: str):
    """The config's model, without pretrained backbone weights."""
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    from mmengine import Config
    register_all_modules()
    cfg = Config.fromfile(config)
    cfg.model.backbone.init_cfg = None
    return MODELS.build(cfg.model)


def check_layout(state_dict: dict, model) -> None:
    """Raise unless ``state_dict`` has exactly the model's keys and shapes
    (what a strict load checks, without copying any value)."""
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    shapes = sorted(
        f'{k}: {tuple(state_dict[k].shape)} vs {expected[k]}'
        for k in set(expected) & set(state_dict)
        if tuple(state_dict[k].shape) != expected[k])
    if missing or unexpected or shapes:
        raise KeyError(f'converted checkpoint does not fit the config: '
                       f'missing {missing[:10]}, unexpected '
                       f'{unexpected[:10]}, shape mismatches {shapes[:10]}')


def convert(src: str,
            dst: str,
            backbone: str = 'ResNet',
            config: Optional[str] = None,
            unsafe_load: bool = False) -> dict:
    """Convert ``src`` into ``dst``; returns the written checkpoint.

    Args:
        src (str): A released ``.pth``.
        dst (str): Output path.
        backbone (str): mmdet backbone type of the model; with ``config``
            it is read from the config instead.
        config (str, optional): Config of the target model: the converted
            keys and shapes are then checked to be exactly the model's.
        unsafe_load (bool): Load ``src`` with ``weights_only=False``.
    """
    from mmdet.datasets import CocoPanopticDataset

    from panseg_plugin.models.utils.panoptic_segformer_cvpr22_checkpoint \
        import convert_official_state_dict, official_backbone_converter
    checkpoint = read_checkpoint(src, unsafe_load)
    model = build_model(config) if config else None
    if model is not None:
        backbone = type(model.backbone).__name__
    state_dict, dropped = convert_official_state_dict(
        checkpoint['state_dict'],
        official_backbone_converter(backbone),
        return_dropped=True)
    if model is not None:
        check_layout(state_dict, model)
    source_meta = checkpoint.get('meta') or {}
    meta = dict(
        dataset_meta=dict(CocoPanopticDataset.METAINFO),
        converted_from=Path(src).name,
        source_meta={
            key: source_meta[key]
            for key in ('mmcv_version', 'mmdet_version', 'epoch', 'iter')
            if key in source_meta
        },
        dropped_keys=dropped)
    output = dict(meta=meta, state_dict=state_dict)
    torch.save(output, dst)
    return output


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('src', help='released checkpoint (.pth)')
    parser.add_argument('dst', help='output checkpoint')
    parser.add_argument(
        '--backbone', default='ResNet', choices=BACKBONES,
        help='backbone of the release (ignored with --config)')
    parser.add_argument(
        '--config', help='target config: check that the result has exactly '
        "the model's keys and shapes")
    parser.add_argument(
        '--unsafe-load', action='store_true',
        help='load src with weights_only=False (only for trusted files)')
    return parser.parse_args()


def main():
    args = parse_args()
    output = convert(args.src, args.dst, args.backbone, args.config,
                     args.unsafe_load)
    print(f'{args.dst}: {len(output["state_dict"])} keys, dropped '
          f'{len(output["meta"]["dropped_keys"])} unused keys'
          f'{", fits " + args.config if args.config else ""}')


if __name__ == '__main__':
    main()

"""Attention maps of the mask decoder as one picture (paper Fig. 5).

Runs a Panoptic SegFormer on one image, takes the ``--topk`` queries with the
highest class score and writes one PNG with a row per query: the image with
the query's binary mask (probability > the fusion head's ``mask_thr``), then
the last mask-decoder layer's attention map of every mask level and head as
heat maps (columns ``L{level} h{head}``). Layout and normalisation are
described in :mod:`panseg_plugin.visualization.attention_grid`.

    python tools/analysis_tools/vis_attention.py CONFIG CKPT IMAGE \\
        --out grid.png [--topk 5] [--norm logits|softmax] [--device cpu]

The image goes through the config's test pipeline (annotation loading
removed); a config without one gets ``LoadImageFromFile`` +
``PackDetInputs``. The picture shows the resized image the model saw.
"""
import argparse
from typing import List, Sequence

import mmcv
import numpy as np
import torch
import torch.nn.functional as F
from mmcv.transforms import Compose
from mmdet.registry import DATASETS
from mmengine.config import DictAction
from mmengine.runner import load_checkpoint

import panseg_plugin  # noqa: F401  (registers the plugin's classes)
from panseg_plugin.models.utils import split_levels
from panseg_plugin.utils.config_helpers import build_model, load_config
from panseg_plugin.visualization.attention_grid import (crop_to_image,
                                                        normalize_attention,
                                                        render_attention_grid)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Render mask-decoder attention maps (paper Fig. 5)')
    parser.add_argument('config', help='config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('image', help='image file')
    parser.add_argument('--out', required=True, help='output PNG')
    parser.add_argument('--topk', type=int, default=5,
                        help='segments (queries) shown, by class score')
    parser.add_argument('--norm', choices=('logits', 'softmax'),
                        default='logits',
                        help='logits: min-max normalised attention logits '
                        '(what the 1x1 mask conv combines); softmax: '
                        'softmax over the tokens of each level / its max')
    parser.add_argument('--cell-size', type=int, default=200,
                        help='longer side of one cell in pixels')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config keys, xxx=yyy')
    return parser.parse_args(argv)


def _test_pipeline(cfg) -> list:
    """The config's test pipeline without annotation loading."""
    default = [dict(type='LoadImageFromFile'),
               dict(type='PackDetInputs')]
    loader = cfg.get('test_dataloader') or {}
    dataset = loader.get('dataset', {})
    while 'pipeline' not in dataset and 'dataset' in dataset:
        dataset = dataset['dataset']  # dataset wrappers
    pipeline = dataset.get('pipeline', default)
    return [t for t in pipeline
            if 'Annotations' not in str(t.get('type', ''))]


def _class_names(cfg, checkpoint: dict, num_classes: int) -> List[str]:
    """From the checkpoint's dataset meta, the config, the dataset class,
    else ``class {i}``."""
    meta = (checkpoint.get('meta') or {}).get('dataset_meta') or {}
    classes = meta.get('classes')
    dataset = (cfg.get('test_dataloader') or {}).get('dataset', {})
    if classes is None:
        classes = (dataset.get('metainfo') or {}).get('classes')
    if classes is None and dataset.get('type'):
        dataset_cls = DATASETS.get(dataset['type'])
        classes = getattr(dataset_cls, 'METAINFO', {}).get('classes')
    if classes is None or len(classes) != num_classes:
        classes = [f'class {i}' for i in range(num_classes)]
    return list(classes)


def attention_grid_for_image(model, data: dict, class_names: Sequence[str],
                             topk: int = 5, norm: str = 'logits',
                             cell_size: int = 200) -> np.ndarray:
    """Run ``model`` on one packed sample and render the grid (RGB).

    Args:
        model: A built :class:`PanopticSegFormer` in eval mode.
        data (dict): ``inputs`` (3, H, W) uint8 BGR tensor and
            ``data_samples``, as the test pipeline packs them.
        class_names (Sequence[str]): Names of the C classes.
        topk (int): Rows (queries with the highest class scores).
        norm (str): See :func:`normalize_attention`.
        cell_size (int): Longer side of one cell.
    """
    batch = model.data_preprocessor(
        dict(inputs=[data['inputs']], data_samples=[data['data_samples']]),
        False)
    explicit = model.bbox_head.explicit_attention
    model.bbox_head.explicit_attention = True  # keep the logits
    try:
        with torch.no_grad():
            outs = model(batch['inputs'], batch['data_samples'],
                         mode='tensor')
    finally:
        model.bbox_head.explicit_attention = explicit
    meta = batch['data_samples'][0].metainfo
    pad_hw = tuple(meta['batch_input_shape'])
    img_h, img_w = meta['img_shape'][:2]

    scores, labels = outs.cls_scores[-1][0].sigmoid().max(dim=-1)
    order = scores.argsort(descending=True)[:min(topk, scores.numel())]
    mask_thr = getattr(model.panoptic_fusion_head, 'mask_thr', 0.5)
    masks = F.interpolate(outs.mask_preds[-1][0][order][None], size=pad_hw,
                          mode='bilinear', align_corners=False)[0]
    masks = (masks[:, :img_h, :img_w].sigmoid() > mask_thr).cpu().numpy()

    level_maps = [
        normalize_attention(
            crop_to_image(level.cpu().numpy(), pad_hw, (img_h, img_w)), norm)
        for level in split_levels(outs.attn_maps[0][order], outs.mask_shapes)
    ]
    image = data['inputs'][:, :img_h, :img_w].permute(1, 2, 0).numpy()
    image = np.ascontiguousarray(image[..., ::-1])  # BGR -> RGB
    row_labels = [
        f'{class_names[int(labels[q])]}\n{float(scores[q]):.2f} (query {q})'
        for q in order.tolist()
    ]
    return render_attention_grid(image, masks, level_maps, row_labels,
                                 cell_size=cell_size)


def main(argv=None) -> np.ndarray:
    args = parse_args(argv)
    cfg = load_config(args.config, args.cfg_options)
    model = build_model(cfg)
    checkpoint = load_checkpoint(model, args.checkpoint, map_location='cpu')
    model.to(args.device).eval()
    for name in ('bbox_head', 'panoptic_fusion_head'):
        if not hasattr(model, name):
            raise TypeError(f'{type(model).__name__} has no {name}: '
                            'vis_attention needs a PanopticSegFormer')

    data = Compose(_test_pipeline(cfg))(dict(img_path=args.image, img_id=0))
    names = _class_names(cfg, checkpoint, model.bbox_head.num_classes)
    grid = attention_grid_for_image(model, data, names, args.topk, args.norm,
                                    args.cell_size)
    mmcv.imwrite(grid[..., ::-1], args.out)  # RGB -> BGR for OpenCV
    print(f'wrote {args.out}: {grid.shape[0]} x {grid.shape[1]} px, '
          f'{min(args.topk, model.num_queries)} segments')
    return grid


if __name__ == '__main__':
    main()

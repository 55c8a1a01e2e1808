"""Parameters and FLOPs of a config's model at a given input size.

No data set is needed: the model runs on one blank image of the requested
size. FLOPs are counted by ``mmengine.analysis`` (one fused multiply-add
counts as one FLOP, the convention of the paper's Table 1).

    python tools/analysis_tools/get_flops.py CONFIG --shape 800 1200
"""
import argparse
import os.path as osp
import sys
from functools import partial

import torch
from mmengine.config import Config, DictAction

sys.path.insert(0, osp.join(osp.dirname(osp.abspath(__file__)), '..', '..'))


def parse_args():
    parser = argparse.ArgumentParser(description='Model parameters and FLOPs')
    parser.add_argument('config', help='config file path, or package::path '
                        'of an OpenMMLab config, e.g. mmdet::deformable_detr/'
                        'deformable-detr_r50_16xb2-50e_coco.py')
    parser.add_argument('--shape', type=int, nargs='+', default=[800, 1200],
                        help='input size: H W, or one number for H = W')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config keys, xxx=yyy')
    parser.add_argument('--show-table', action='store_true',
                        help='print the per-module table')
    return parser.parse_args()


def complexity(cfg, height: int, width: int, show_table: bool = False):
    """Return ``(params, flops, table)`` of ``cfg.model`` on one
    ``height`` x ``width`` image (pretrained weights are not loaded)."""
    from mmdet.registry import MODELS
    from mmdet.structures import DetDataSample
    from mmengine.analysis import get_model_complexity_info

    cfg.model.backbone.init_cfg = None
    model = MODELS.build(cfg.model).eval()
    sample = DetDataSample(metainfo=dict(
        img_shape=(height, width), ori_shape=(height, width),
        pad_shape=(height, width), batch_input_shape=(height, width),
        scale_factor=(1.0, 1.0)))
    inputs = torch.zeros(1, 3, height, width)
    model.forward = partial(model.forward, data_samples=[sample],
                            mode='tensor')
    with torch.no_grad():
        info = get_model_complexity_info(
            model, inputs=(inputs, ), show_table=show_table, show_arch=False)
    return info['params'], info['flops'], info.get('out_table', '')


def main():
    args = parse_args()
    from mmengine.registry import init_default_scope

    import panseg_plugin  # noqa: F401
    height, width = (args.shape * 2)[:2]
    if '::' in args.config:  # e.g. mmdet::deformable_detr/...py
        from mmengine.hub import get_config
        cfg = get_config(args.config)
    else:
        cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    params, flops, table = complexity(cfg, height, width, args.show_table)
    if table:
        print(table)
    print(f'{"=" * 40}\nConfig: {args.config}\n'
          f'Input shape: (3, {height}, {width})\n'
          f'Params: {params / 1e6:.2f}M\nFLOPs: {flops / 1e9:.1f}G\n'
          f'{"=" * 40}')


if __name__ == '__main__':
    main()

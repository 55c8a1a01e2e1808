"""Parameters and FLOPs of a config's model at a given input size.

No data set is needed: the model runs on one blank image of the requested
size. FLOPs are counted by ``mmengine.analysis`` (one fused multiply-add
counts as one FLOP, the convention of the paper's Table 1).

    python tools/analysis_tools/get_flops.py CONFIG --shape 800 1200
"""
import argparse
from functools import partial

import torch
from mmdet.structures import DetDataSample
from mmengine.analysis import get_model_complexity_info
from mmengine.config import DictAction

import panseg_plugin  # noqa: F401  (registers the plugin's classes)
from panseg_plugin.utils.config_helpers import build_model, load_config


def parse_args(argv=None):
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
    return parser.parse_args(argv)


def complexity(cfg, height: int, width: int, show_table: bool = False):
    """Return ``(params, flops, table)`` of ``cfg.model`` on one
    ``height`` x ``width`` image (pretrained weights are not loaded)."""
    model = build_model(cfg).eval()
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


def main(argv=None):
    args = parse_args(argv)
    height, width = (args.shape * 2)[:2]
    cfg = load_config(args.config, args.cfg_options)
    params, flops, table = complexity(cfg, height, width, args.show_table)
    if table:
        print(table)
    print(f'{"=" * 40}\nConfig: {args.config}\n'
          f'Input shape: (3, {height}, {width})\n'
          f'Params: {params / 1e6:.2f}M\nFLOPs: {flops / 1e9:.1f}G\n'
          f'{"=" * 40}')
    return params, flops


if __name__ == '__main__':
    main()

"""Export a Panoptic SegFormer to ONNX and check it against PyTorch.

    python tools/deployment/pytorch2onnx.py CONFIG [CHECKPOINT] \\
        --shape H W --out model.onnx [--opset 17] [--batch-size 1] \\
        [--static-batch] [--atol 1e-4] [--rtol 1e-3] [--skip-check] \\
        [--warmup 1] [--runs 3] [--seed 0] [--report r.json] \\
        [--cfg-options k=v ...]

The graph runs from the preprocessed image (normalised, padded: the output
of the config's data preprocessor) of size ``H x W`` to the class logits
``cls_scores`` (B, N, C) and mask logits ``mask_preds`` (B, N, H/8, W/8)
of the last mask-decoder layer and the locations ``loc_preds`` (B, N, 3):
the detector's ``mode='tensor'``. The batch is dynamic unless
``--static-batch``; height and width are fixed. Deformable attention runs
on mmcv's pure-PyTorch path (``grid_sample``, opset 16 or later): the
model is exported on the CPU. Sizes that give a feature level a side of 1
(e.g. 32 x 64 with a stride-32 level) are refused: torch's exporter gives
that level NaN reference points.

Without CHECKPOINT the weights are random (seeded, nothing downloaded), to
check that a config exports.

After the export, onnxruntime (CPU execution provider) runs the model on
the example input and on a batch of two, and the outputs are compared with
PyTorch's: the maximum absolute and relative differences are printed, and
the tool exits with status 1 when an output leaves the tolerance
``|onnx - torch| <= atol + rtol * |torch|``. Then the latency of the
network in PyTorch and in onnxruntime is printed (CPU, same threads;
``measure_onnx_latency`` of ``panoptic_segformer_onnx.py`` gives the same
figures in one call, for latency tables).

Post-processing stays in Python: ``demo/onnx_demo.py`` runs the ONNX model
and the config's fusion head on images.
"""
import argparse
import importlib.util
import json
import os.path as osp
import sys

import torch
from mmengine.config import Config, DictAction


def _load_helpers():
    """``panoptic_segformer_onnx.py`` next to this file (``tools`` is not a
    package)."""
    name = 'panseg_onnx_utils'
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            name,
            osp.join(osp.dirname(osp.abspath(__file__)),
                     'panoptic_segformer_onnx.py'))
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        sys.modules[name] = module
    return sys.modules[name]


onnx_utils = _load_helpers()

DEFAULT_ATOL = 1e-4
DEFAULT_RTOL = 1e-3


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Export Panoptic SegFormer to ONNX, check onnxruntime '
        'against PyTorch')
    parser.add_argument('config', help='config file')
    parser.add_argument(
        'checkpoint', nargs='?', default=None,
        help='checkpoint file (default: random weights)')
    parser.add_argument(
        '--shape', type=int, nargs=2, required=True, metavar=('H', 'W'),
        help='input height and width (multiples of the pad size divisor)')
    parser.add_argument('--out', required=True, help='the .onnx file')
    parser.add_argument(
        '--opset', type=int, default=onnx_utils.DEFAULT_OPSET,
        help=f'ONNX opset (>= {onnx_utils.MIN_OPSET})')
    parser.add_argument(
        '--batch-size', type=int, default=1,
        help='batch of the example input used for the export')
    parser.add_argument(
        '--static-batch', action='store_true',
        help='fix the batch size instead of a dynamic batch dimension')
    parser.add_argument('--atol', type=float, default=DEFAULT_ATOL,
                        help='absolute tolerance of the parity check')
    parser.add_argument('--rtol', type=float, default=DEFAULT_RTOL,
                        help='relative tolerance of the parity check')
    parser.add_argument(
        '--skip-check', action='store_true',
        help='export only: no onnxruntime parity check nor latency')
    parser.add_argument('--warmup', type=int, default=1,
                        help='latency runs discarded')
    parser.add_argument(
        '--runs', type=int, default=3,
        help='timed latency runs, median reported (0: no latency)')
    parser.add_argument('--seed', type=int, default=0,
                        help='seed of random weights and inputs')
    parser.add_argument(
        '--report', default=None,
        help='also write the figures as JSON to this file')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override config settings, xxx=yyy')
    args = parser.parse_args(argv)
    if args.opset < onnx_utils.MIN_OPSET:
        parser.error(f'--opset must be >= {onnx_utils.MIN_OPSET} '
                     '(GridSample)')
    if args.batch_size < 1:
        parser.error(f'--batch-size must be >= 1, got {args.batch_size}')
    if args.runs < 0 or args.warmup < 0:
        parser.error('--runs and --warmup must be >= 0')
    if not args.out.endswith('.onnx'):
        parser.error(f'--out must name a .onnx file, got {args.out}')
    return args


def parity_batches(example, dynamic_batch, seed):
    """Inputs of the parity check: the export's example and, with a
    dynamic batch, a batch of two other images."""
    batches = [('export input', example)]
    if dynamic_batch:
        generator = torch.Generator().manual_seed(seed + 1)
        batches.append(('batch of 2', torch.randn(
            2, *example.shape[1:], generator=generator)))
    return batches


def main(argv=None):
    """Export, check and time; returns the report dict (``parity``: per
    checked input, per output; ``latency``; ``ok``)."""
    args = parse_args(argv)
    import panseg_plugin  # noqa: F401  (registers the plugin)
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    divisor = cfg.model.get('data_preprocessor', {}).get(
        'pad_size_divisor', 1) or 1
    shape = onnx_utils.check_shape(args.shape, divisor)

    detector = onnx_utils.build_detector(cfg, args.checkpoint, args.seed)
    wrapper = onnx_utils.PanopticSegFormerOnnxWrapper(detector, shape)
    dynamic_batch = not args.static_batch
    example = onnx_utils.export_onnx(
        wrapper, args.out, batch_size=args.batch_size, opset=args.opset,
        dynamic_batch=dynamic_batch, seed=args.seed)
    print(f'exported {args.out} (opset {args.opset}, input '
          f'{"B" if dynamic_batch else args.batch_size} x 3 x {shape[0]} x '
          f'{shape[1]}, weights: {args.checkpoint or "random"})')
    report = dict(onnx=args.out, shape=list(shape), opset=args.opset,
                  dynamic_batch=dynamic_batch, atol=args.atol,
                  rtol=args.rtol, parity={}, ok=True)
    if not args.skip_check:
        check(args, wrapper, example, report)
    if args.report:
        with open(args.report, 'w') as f:
            json.dump(report, f, indent=2)
    if not report['ok']:
        print('parity check FAILED: onnxruntime outputs leave the '
              f'tolerance (atol {args.atol:g}, rtol {args.rtol:g})',
              file=sys.stderr)
    return report


def check(args, wrapper, example, report):
    """Parity on every input of :func:`parity_batches`, then latency;
    fills ``report`` in place."""
    dynamic_batch = report['dynamic_batch']
    session = onnx_utils.create_session(
        args.out, num_threads=torch.get_num_threads())
    for name, batch in parity_batches(example, dynamic_batch, args.seed):
        parity = onnx_utils.compare_outputs(
            onnx_utils.run_pytorch(wrapper, batch),
            onnx_utils.run_session(session, batch), args.atol, args.rtol)
        report['parity'][name] = parity
        report['ok'] &= all(r['ok'] for r in parity.values())
        print(f'[{name}] ' +
              onnx_utils.format_parity(parity, args.atol, args.rtol))
    if args.runs:
        latency = onnx_utils.compare_latency(
            wrapper, session, example, warmup=args.warmup, runs=args.runs)
        report['latency'] = latency
        print(f'latency (CPU, batch {example.shape[0]}, '
              f'{latency["torch_threads"]} threads, median of {args.runs}): '
              f'PyTorch {latency["pytorch_ms"]:.1f} ms, onnxruntime '
              f'{latency["onnxruntime_ms"]:.1f} ms '
              f'({latency["speedup"]:.2f}x)')


if __name__ == '__main__':
    sys.exit(0 if main()['ok'] else 1)

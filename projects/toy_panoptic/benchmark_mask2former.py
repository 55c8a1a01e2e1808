"""Panoptic SegFormer vs mmdet's Mask2Former on the toy set, equal budget.

    python projects/toy_panoptic/benchmark_mask2former.py [--max-iters N]

Trains, in this one process and on this machine, the toy Panoptic
SegFormer (``configs/panoptic-segformer_r18-tiny_toy-panoptic.py``) and
mmdet's own Mask2Former of the same size class
(``configs/mask2former_r18-tiny_toy-panoptic.py``: same ResNet-18 from the
same pretrained weights, 64-dim transformer, 20 queries) on the same toy
data, with the same iteration budget, batch, optimiser and schedule, then
evaluates both with ``CocoPanopticMetric`` and prints PQ (all, things,
stuff), SQ, RQ, mask AP, parameters and training time, with the ratios
ours / Mask2Former. This is how the paper's claim of fast convergence is
checked on the toy task.
"""
import argparse
import json
import os
import os.path as osp
import time

from mmengine.config import DictAction
from mmengine.registry import init_default_scope
from mmengine.runner import Runner

from toy_panoptic import make_toy_panoptic
from toy_panoptic.experiment import build_cfg, learning_curve, prepare_backbone

HERE = osp.dirname(osp.abspath(__file__))
MODELS = {
    'panoptic_segformer': osp.join(
        HERE, 'configs', 'panoptic-segformer_r18-tiny_toy-panoptic.py'),
    'mask2former': osp.join(HERE, 'configs',
                            'mask2former_r18-tiny_toy-panoptic.py'),
}
KEYS = ('PQ', 'PQ_th', 'PQ_st', 'SQ', 'RQ')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--data-root', default='data/toy_panoptic')
    parser.add_argument('--work-dir', default='work_dirs/toy_benchmark')
    parser.add_argument('--max-iters', type=int, default=None,
                        help='budget of both models (default: the toy '
                        'config\'s)')
    parser.add_argument('--num-train', type=int, default=3000)
    parser.add_argument('--num-val', type=int, default=50)
    parser.add_argument('--img-size', type=int, default=128)
    parser.add_argument('--pretrain-iters', type=int, default=1800,
                        help='backbone pretraining steps shared by both '
                        'models (0: both backbones from scratch)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--models', nargs='+', default=list(MODELS),
                        choices=list(MODELS))
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override keys of both configs, e.g. '
                        'optim_wrapper.optimizer.lr=8e-4')
    return parser.parse_args(argv)


def train_and_test(name: str, args) -> dict:
    """Train one model on the toy set and evaluate it; returns its figures
    (metrics in percent, parameters in millions, seconds)."""
    run_args = argparse.Namespace(**vars(args))
    run_args.config = MODELS[name]
    run_args.work_dir = osp.join(args.work_dir, name)
    cfg = build_cfg(run_args)
    # one set of pretrained weights for both (written by the first model)
    prepare_backbone(
        cfg, run_args,
        osp.join(args.work_dir, 'pretrain', 'r18-tiny_things.pth'))
    init_default_scope('mmdet')
    runner = Runner.from_cfg(cfg)
    params = sum(p.numel() for p in runner.model.parameters()) / 1e6
    print(f'== {name}: {params:.2f}M parameters, '
          f'{cfg.train_cfg.max_iters} iterations')
    start = time.time()
    runner.train()
    train_s = time.time() - start
    metrics = runner.test()
    result = {key: float(metrics[f'coco_panoptic/{key}']) for key in KEYS}
    result.update(
        segm_mAP=100 * float(metrics.get('coco/segm_mAP', float('nan'))),
        params_m=round(params, 3),
        iters=cfg.train_cfg.max_iters,
        train_s=round(train_s, 1),
        curve=learning_curve(runner.log_dir))
    return result


def report(results: dict) -> str:
    """The comparison table, plus ratios when both models ran."""
    cols = KEYS + ('segm_mAP', 'params_m', 'train_s')
    lines = [f'{"model":20s}' + ''.join(f'{c:>10s}' for c in cols)]
    for name, r in results.items():
        lines.append(f'{name:20s}' + ''.join(f'{r[c]:10.1f}' for c in cols))
    if len(results) == 2:
        ours, base = results['panoptic_segformer'], results['mask2former']
        ratios = [ours[c] / base[c] if base[c] else float('inf')
                  for c in cols]
        lines.append(f'{"ratio ours/m2f":20s}' +
                     ''.join(f'{r:10.2f}' for r in ratios))
    return '\n'.join(lines)


def main(argv=None):
    args = parse_args(argv)
    make_toy_panoptic(args.data_root, num_train=args.num_train,
                      num_val=args.num_val, img_size=args.img_size,
                      seed=args.seed)
    results = {name: train_and_test(name, args) for name in args.models}
    table = report(results)
    os.makedirs(args.work_dir, exist_ok=True)
    out = osp.join(args.work_dir, 'benchmark.json')
    with open(out, 'w') as f:
        json.dump(dict(args=vars(args), results=results), f, indent=1)
    print('\n' + '=' * 90)
    print('Toy panoptic validation split, equal training budget '
          f'({args.num_train} train / {args.num_val} val images, '
          f'{args.img_size} px, seed {args.seed})')
    print(table)
    print(f'written: {osp.abspath(out)}')
    print('=' * 90)
    return results


if __name__ == '__main__':
    main()

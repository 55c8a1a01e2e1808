"""Pretrain the toy backbone on crops of the training things.

    python projects/toy_panoptic/pretrain_backbone.py [--out FILE]
        [--iters 1800] [--scale native|fit] [--jitter PX] [--pool mask|mean]

What it does and why: :mod:`toy_panoptic.pretrain`.
"""
import argparse
import os.path as osp

from toy_panoptic.pretrain import DEFAULT_CONFIG, pretrain_backbone


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--config', default=DEFAULT_CONFIG)
    parser.add_argument('--data-root', default='data/toy_panoptic')
    parser.add_argument('--out', help='where to save the backbone, e.g. '
                        'work_dirs/toy_panoptic/pretrain/r18-tiny_things.pth')
    parser.add_argument('--scale', choices=('fit', 'native'),
                        default='native')
    parser.add_argument('--jitter', type=float, default=16.0)
    parser.add_argument('--pool', choices=('mean', 'mask'), default='mask')
    parser.add_argument('--iters', type=int, default=1800)
    parser.add_argument('--lr', type=float, default=1e-3)
    parser.add_argument('--batch-size', type=int, default=64)
    parser.add_argument('--crop-size', type=int, default=64)
    parser.add_argument('--log-interval', type=int, default=100)
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args(argv)
    print(f'thing crops: scale {args.scale}, jitter {args.jitter:g} px, '
          f'pool {args.pool}, {args.iters} steps of {args.batch_size} crops')
    result = pretrain_backbone(
        args.data_root, args.out, args.config, args.scale, args.jitter,
        args.pool, args.iters, batch_size=args.batch_size, lr=args.lr,
        crop_size=args.crop_size, log_interval=args.log_interval,
        seed=args.seed)
    if args.out:
        print(f'written: {osp.abspath(args.out)}')
    return result


if __name__ == '__main__':
    main()

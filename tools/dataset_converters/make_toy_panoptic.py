"""Write the synthetic toy panoptic data set in COCO panoptic format.

Example::

    python tools/dataset_converters/make_toy_panoptic.py data/toy_panoptic \
        --num-train 3000 --num-val 50 --img-size 128 --seed 0

Running it again with the same arguments keeps the existing files; other
arguments (or ``--overwrite``) regenerate them. The generator is the toy
project's (``projects/toy_panoptic/toy_panoptic/generator.py``, which
describes the layout).
"""
import argparse
import importlib.util
import os.path as osp
import sys
import time

TOY_PACKAGE = osp.join(osp.dirname(osp.abspath(__file__)), '..', '..',
                       'projects', 'toy_panoptic', 'toy_panoptic')


def import_toy_package():
    """The toy project's package ``toy_panoptic``: the module of that name
    if already imported, else imported from its folder by location (the
    project is not installed, and the import path stays as it is)."""
    if 'toy_panoptic' in sys.modules:
        return sys.modules['toy_panoptic']
    spec = importlib.util.spec_from_file_location(
        'toy_panoptic', osp.join(TOY_PACKAGE, '__init__.py'),
        submodule_search_locations=[TOY_PACKAGE])
    module = importlib.util.module_from_spec(spec)
    sys.modules['toy_panoptic'] = module
    spec.loader.exec_module(module)
    return module


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Generate the toy COCO-panoptic data set')
    parser.add_argument(
        'out_dir', nargs='?', default='data/toy_panoptic',
        help='output folder (data_root of the configs)')
    parser.add_argument('--num-train', type=int, default=3000)
    parser.add_argument('--num-val', type=int, default=50)
    parser.add_argument(
        '--img-size', type=int, nargs='+', default=[128],
        help='one int for square images, or WIDTH HEIGHT')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument(
        '--max-instances', type=int, default=5,
        help='most regular things per image')
    parser.add_argument(
        '--stuff-only-ratio', type=float, default=0.1,
        help='fraction of images without things')
    parser.add_argument(
        '--clutter-ratio', type=float, default=0.2,
        help='fraction of the other images with small clutter things')
    parser.add_argument('--jpeg-quality', type=int, default=90)
    parser.add_argument(
        '--overwrite', action='store_true',
        help='regenerate even when matching data exists')
    args = parser.parse_args(argv)
    if len(args.img_size) not in (1, 2):
        parser.error('--img-size takes one or two ints')
    return args


def main(argv=None):
    args = parse_args(argv)
    size = args.img_size[0] if len(args.img_size) == 1 else tuple(
        args.img_size)
    start = time.perf_counter()
    paths = import_toy_package().make_toy_panoptic(
        args.out_dir,
        num_train=args.num_train,
        num_val=args.num_val,
        img_size=size,
        seed=args.seed,
        max_instances=args.max_instances,
        stuff_only_ratio=args.stuff_only_ratio,
        clutter_ratio=args.clutter_ratio,
        jpeg_quality=args.jpeg_quality,
        overwrite=args.overwrite)
    if paths['skipped']:
        print(f'{args.out_dir} already holds this data set '
              f'({paths["meta_file"]}); skipped (use --overwrite to redo)')
    else:
        print(f'wrote {args.num_train} train + {args.num_val} val images to '
              f'{args.out_dir} in {time.perf_counter() - start:.1f} s')
    for split in ('train', 'val'):
        for key, path in paths[split].items():
            print(f'  {split:5s} {key:14s} {path}')
    return paths


if __name__ == '__main__':
    main()

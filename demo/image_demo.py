"""Run a Panoptic SegFormer (or any mmdet 3.x model) on images.

A thin command line over mmdet's :class:`~mmdet.apis.DetInferencer`::

    python demo/image_demo.py INPUTS [MODEL] [--weights CKPT]
        [--out-dir outputs] [--device cpu] [--pred-score-thr 0.3]
        [--batch-size 1] [--show] [--no-save-vis] [--no-save-pred]
        [--print-result] [--palette none] [--cfg-options k=v ...]

``INPUTS`` is an image file, a folder of images or a URL. ``MODEL`` is a
config file; a ``.pth`` given there is taken as ``--weights`` and the
config is read from the checkpoint's ``meta`` (every checkpoint written
by ``tools/train.py`` carries it). ``--weights`` is a local path or a URL,
loaded through mmengine's ``load_checkpoint`` machinery.

Under ``--out-dir`` it writes, per image ``NAME.jpg``:

- ``vis/NAME.jpg``: the prediction drawn on the image;
- ``preds/NAME.json``: the instances (labels, scores, boxes, RLE masks)
  and, for a panoptic model, ``panoptic_seg_path``;
- ``preds/NAME_panoptic_seg.png``: the panoptic map in the COCO panoptic
  PNG encoding (id = R + 256 G + 256^2 B, 0 = void, a stuff segment's id is
  its label, a thing's ``label + k * 1000``).

Examples::

    # a folder, a config and weights (a path or a URL), 4 images a batch
    python demo/image_demo.py images/ CONFIG --weights CKPT --batch-size 4
    # a checkpoint of tools/train.py alone: its config comes with it
    python demo/image_demo.py img.jpg work_dirs/toy_panoptic/iter_2000.pth

Like ``tools/train.py`` it imports ``panseg_plugin`` itself, so a config
that forgets ``custom_imports`` still finds the plugin's classes.
"""
import argparse

import torch
from mmdet.apis import DetInferencer
from mmengine.config import Config, DictAction
from mmengine.logging import print_log

import panseg_plugin  # noqa: F401  (checks versions, registers)

PALETTES = ('coco', 'voc', 'citys', 'random', 'none')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Panoptic SegFormer image demo (mmdet DetInferencer)')
    parser.add_argument(
        'inputs', type=str, help='an image file, a folder or a URL')
    parser.add_argument(
        'model', type=str, nargs='?', default=None,
        help='config file, or a checkpoint (.pth) holding its config')
    parser.add_argument(
        '--weights', default=None,
        help='checkpoint file or URL (loaded by mmengine)')
    parser.add_argument(
        '--out-dir', type=str, default='outputs',
        help='where vis/ and preds/ are written')
    parser.add_argument(
        '--device', default='cuda:0' if torch.cuda.is_available() else 'cpu',
        help='device used for inference (default: cuda:0 if available, '
        'else cpu)')
    parser.add_argument(
        '--pred-score-thr', type=float, default=0.3,
        help='instances scoring below it are not drawn (the panoptic map '
        'has its own threshold, model.panoptic_fusion_head.score_thr)')
    parser.add_argument(
        '--batch-size', type=int, default=1, help='inference batch size')
    parser.add_argument(
        '--show', action='store_true',
        help='show each result in a window')
    parser.add_argument(
        '--no-save-vis', action='store_true',
        help='do not write the drawings (vis/)')
    parser.add_argument(
        '--no-save-pred', action='store_true',
        help='do not write the predictions (preds/)')
    parser.add_argument(
        '--print-result', action='store_true',
        help='print the predictions')
    parser.add_argument(
        '--palette', default='none', choices=PALETTES,
        help='drawing colours; "none" takes the config\'s, then the '
        'checkpoint\'s')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override settings of the MODEL config, xxx=yyy, e.g. '
        'model.panoptic_fusion_head.score_thr=0.5 (needs a config file '
        'as MODEL)')
    args = parser.parse_args(argv)

    if args.model is not None and args.model.endswith('.pth'):
        if args.weights is not None:
            parser.error(f'MODEL {args.model} is a checkpoint and --weights '
                         f'{args.weights} is given too: give one of them')
        print_log('The model is a checkpoint: using it as --weights and '
                  'its config from meta')
        args.weights, args.model = args.model, None
    if args.model is None and args.weights is None:
        parser.error('give a config (MODEL) or a checkpoint (MODEL or '
                     '--weights)')
    if args.cfg_options and args.model is None:
        parser.error('--cfg-options needs a config file as MODEL')
    if args.batch_size < 1:
        parser.error(f'--batch-size must be >= 1, got {args.batch_size}')
    return args


def main(argv=None):
    """Run the demo; returns DetInferencer's results dict."""
    args = parse_args(argv)
    model = args.model
    if model is not None and args.cfg_options:
        model = Config.fromfile(model)
        model.merge_from_dict(args.cfg_options)

    inferencer = DetInferencer(
        model=model, weights=args.weights, device=args.device,
        palette=args.palette)

    out_dir = args.out_dir
    if args.no_save_vis and args.no_save_pred:
        out_dir = ''
    results = inferencer(
        args.inputs,
        batch_size=args.batch_size,
        out_dir=out_dir,
        show=args.show,
        pred_score_thr=args.pred_score_thr,
        no_save_vis=args.no_save_vis,
        no_save_pred=args.no_save_pred,
        print_result=args.print_result)

    if out_dir:
        written = [name for name, off in (('vis/', args.no_save_vis),
                                          ('preds/', args.no_save_pred))
                   if not off]
        print_log(f'results have been saved at {out_dir} '
                  f'({", ".join(written)})')
    return results


if __name__ == '__main__':
    main()

"""The quick start: toy data -> train on CPU -> PQ -> pictures.

    python projects/toy_panoptic/quickstart.py [--work-dir DIR] [--max-iters N]

1. writes the synthetic COCO-panoptic data set (skipped when it exists),
2. pretrains the backbone on crops of the training things, the toy's
   ImageNet (``pretrain_backbone.py``; skipped when its output exists for
   the same data and settings),
3. trains the small Panoptic SegFormer of ``configs/`` with mmengine's
   Runner, logging progress every 50 iterations,
4. evaluates PQ/SQ/RQ (things and stuff) with mmdet's ``CocoPanopticMetric``,
   mIoU of the semantic output with ``SemSegMetric`` and mask AP with
   ``CocoMetric``,
5. renders image | ground truth | prediction for a few validation images,
   enlarged 4 times,
6. prints the learning curve and where everything was written.
"""
import argparse
import inspect
import json
import os
import os.path as osp
import time

import mmcv
import numpy as np
import torch
from mmdet.registry import MODELS, VISUALIZERS
from mmdet.structures import DetDataSample
from mmengine.config import DictAction
from mmengine.dataset import pseudo_collate
from mmengine.registry import init_default_scope
from mmengine.runner import Runner
from mmengine.structures import PixelData

from panseg_plugin.visualization import gt_panoptic_seg
from toy_panoptic import make_toy_panoptic
from toy_panoptic.experiment import build_cfg, learning_curve, prepare_backbone
from toy_panoptic.pretrain import DEFAULT_CONFIG


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--config', default=DEFAULT_CONFIG)
    parser.add_argument('--data-root', default='data/toy_panoptic')
    parser.add_argument('--work-dir', default='work_dirs/toy_panoptic')
    parser.add_argument('--max-iters', type=int, default=None,
                        help='override the config (e.g. 30 for a smoke run)')
    parser.add_argument('--num-train', type=int, default=3000,
                        help='training images (generated: ~1 s per 200)')
    parser.add_argument('--num-val', type=int, default=50)
    parser.add_argument('--img-size', type=int, default=128)
    parser.add_argument('--num-vis', type=int, default=4,
                        help='validation images in the picture')
    parser.add_argument('--pretrain-iters', type=int, default=1800,
                        help='backbone pretraining steps on thing crops '
                        '(0: train the backbone from scratch)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config keys, e.g. '
                        'optim_wrapper.optimizer.lr=1e-3')
    return parser.parse_args(argv)


def with_semantic_output(cfg):
    """The quick start also reports mIoU: the fusion head's semantic map
    (``semantic_on``, from the same mask-wise merge) scored by mmdet's
    ``SemSegMetric`` next to PQ. The config itself stays panoptic only
    (its test-time augmentation has no semantic output). A fusion head
    without a semantic output (the released architecture's) is left as it
    is."""
    init_default_scope('mmdet')
    fusion_cls = MODELS.get(cfg.model.panoptic_fusion_head.type)
    if 'semantic_on' not in inspect.signature(fusion_cls).parameters:
        return cfg
    cfg.model.panoptic_fusion_head.semantic_on = True
    cfg.test_evaluator = list(cfg.test_evaluator) + [
        dict(type='SemSegMetric', iou_metrics=['mIoU'], prefix='sem_seg')
    ]
    return cfg


def _upscaled(panoptic_seg, factor):
    """A panoptic map (``PixelData`` with ``sem_seg`` (1, H, W)) enlarged
    ``factor`` times by repeating pixels."""
    seg = panoptic_seg.sem_seg
    return PixelData(sem_seg=seg.repeat_interleave(factor, -2)
                     .repeat_interleave(factor, -1))


def render(runner, num_images, out_file, scale=4):
    """Save image | ground truth | prediction rows for the first
    ``num_images`` validation images, each enlarged ``scale`` times (nearest
    neighbour: the toy's 128 px tiles, with labels a person can read);
    returns the picture's (H, W)."""
    dataset = runner.val_dataloader.dataset
    meta = dataset.metainfo
    visualizer = VISUALIZERS.build(
        dict(type='PanopticSegFormerVisualizer', name='toy_quickstart',
             alpha=0.6))
    visualizer.dataset_meta = meta
    model = runner.model
    model.eval()
    rows = []
    for idx in range(min(num_images, len(dataset))):
        data = pseudo_collate([dataset[idx]])
        with torch.no_grad():
            sample = model.test_step(data)[0]
        # draw the panoptic maps only (not boxes and semantic maps too)
        drawn = DetDataSample(metainfo=sample.metainfo)
        drawn.gt_panoptic_seg = _upscaled(
            gt_panoptic_seg(sample, len(meta['classes'])), scale)
        drawn.pred_panoptic_seg = _upscaled(sample.pred_panoptic_seg, scale)
        image = mmcv.imrescale(
            mmcv.imread(sample.img_path, channel_order='rgb'), scale,
            interpolation='nearest')
        visualizer.add_datasample('toy', image, drawn, draw_gt=True,
                                  draw_pred=True, show=False)
        rows.append(np.concatenate([image, visualizer.get_image()], axis=1))
    picture = np.concatenate(rows, axis=0)
    mmcv.imwrite(mmcv.rgb2bgr(picture), out_file)
    return picture.shape[:2]


def main(argv=None):
    args = parse_args(argv)
    start = time.time()
    print(f'[1/5] toy data set in {args.data_root}')
    info = make_toy_panoptic(args.data_root, num_train=args.num_train,
                             num_val=args.num_val, img_size=args.img_size,
                             seed=args.seed)
    print('      reused existing files' if info['skipped'] else
          f'      written in {time.time() - start:.1f}s')
    phases = dict(data_s=time.time() - start)

    cfg = with_semantic_output(build_cfg(args))
    print(f'[2/5] backbone pretraining ({args.pretrain_iters} steps on '
          'crops of the training things)')
    pretrain_start = time.time()
    backbone = prepare_backbone(
        cfg, args, osp.join(args.work_dir, 'pretrain', 'r18-tiny_things.pth'))
    phases['pretrain_s'] = time.time() - pretrain_start
    init_default_scope('mmdet')
    runner = Runner.from_cfg(cfg)
    print(f'[3/5] training {cfg.train_cfg.max_iters} iterations on '
          f'{torch.get_num_threads()} CPU threads (log every '
          f'{cfg.default_hooks.logger.interval})')
    train_start = time.time()
    runner.train()
    phases['train_s'] = time.time() - train_start
    print('[4/5] evaluation on the validation split')
    test_start = time.time()
    metrics = runner.test()
    out_dir = osp.join(args.work_dir, 'quickstart')
    os.makedirs(out_dir, exist_ok=True)
    picture = osp.join(out_dir, 'val_predictions.png')
    print(f'[5/5] rendering {args.num_vis} validation images')
    size = render(runner, args.num_vis, picture)
    phases['test_and_picture_s'] = time.time() - test_start

    curve = learning_curve(runner.log_dir)
    summary = dict(
        metrics={k: float(v) for k, v in metrics.items()},
        learning_curve=curve,
        picture=picture,
        picture_size=list(size),
        pretrained_backbone=backbone,
        pretrain_s=round(phases['pretrain_s'], 1),
        phases_s={k: round(v, 1) for k, v in phases.items()},
        wall_time_s=round(time.time() - start, 1))
    with open(osp.join(out_dir, 'summary.json'), 'w') as f:
        json.dump(summary, f, indent=1)
    print_report(summary, args, runner)
    return summary


def print_report(summary, args, runner):
    m = summary['metrics']
    get = lambda key: m.get(f'coco_panoptic/{key}', float('nan'))  # noqa
    print('\n' + '=' * 64)
    print('Panoptic SegFormer on the toy validation split')
    print(f'  {"":8s}{"PQ":>8s}{"SQ":>8s}{"RQ":>8s}')
    for name, suffix in (('All', ''), ('Things', '_th'), ('Stuff', '_st')):
        print(f'  {name:8s}' + ''.join(
            f'{get(k + suffix):8.1f}' for k in ('PQ', 'SQ', 'RQ')))
    if 'sem_seg/mIoU' in m:
        print(f'  semantic mIoU: {m["sem_seg/mIoU"]:.1f}')
    if 'coco/segm_mAP' in m:
        print(f'  mask AP (things): {100 * m["coco/segm_mAP"]:.1f}')
    curve = summary['learning_curve']
    if curve:
        every = max(1, len(curve) // 8)
        points = curve[::every] + ([curve[-1]] if len(curve) % every != 1
                                   else [])
        print('  learning curve (iteration: loss): ' + ', '.join(
            f'{step}: {loss:.2f}' for step, loss in points))
    phases = summary['phases_s']
    print(f'  wall time: {summary["wall_time_s"]:.0f}s (data '
          f'{phases["data_s"]:.0f}s, pretraining {phases["pretrain_s"]:.0f}s,'
          f' training {phases["train_s"]:.0f}s, test and picture '
          f'{phases["test_and_picture_s"]:.0f}s)')
    print('Written:')
    print(f'  data set        {osp.abspath(args.data_root)}')
    print(f'  checkpoints     {osp.abspath(args.work_dir)}')
    if summary['pretrained_backbone']:
        print('  backbone        '
              f'{osp.abspath(summary["pretrained_backbone"])}')
    print(f'  training log    {osp.abspath(runner.log_dir)}')
    print(f'  picture         {osp.abspath(summary["picture"])}'
          '  (image | ground truth | prediction)')
    print(f'  summary         {osp.abspath(osp.dirname(summary["picture"]))}'
          '/summary.json')
    print('=' * 64)


if __name__ == '__main__':
    main()

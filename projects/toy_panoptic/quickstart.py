"""The quick start: toy data -> train on CPU -> PQ -> pictures.

    python projects/toy_panoptic/quickstart.py [--work-dir DIR] [--max-iters N]

1. writes the synthetic COCO-panoptic data set (skipped when it exists),
2. pretrains the backbone on crops of the training things, the toy's
   ImageNet (``pretrain_backbone.py``; skipped when its output exists for
   the same data and settings),
3. trains the small Panoptic SegFormer of ``configs/`` with mmengine's
   Runner, logging progress every 50 iterations,
4. evaluates PQ/SQ/RQ (things and stuff) with mmdet's ``CocoPanopticMetric``
   and mask AP with ``CocoMetric``,
5. renders image | ground truth | prediction for a few validation images,
6. prints the learning curve and where everything was written.
"""
import argparse
import json
import os
import os.path as osp
import sys
import time

HERE = osp.dirname(osp.abspath(__file__))
sys.path.insert(0, osp.join(HERE, '..', '..'))
sys.path.insert(0, HERE)

DEFAULT_CONFIG = osp.join(HERE, 'configs',
                          'panoptic-segformer_r18-tiny_toy-panoptic.py')


def parse_args(argv=None):
    from mmengine.config import DictAction
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


def build_cfg(args):
    from mmengine.config import Config
    cfg = Config.fromfile(args.config)
    cfg.work_dir = args.work_dir
    root = args.data_root.rstrip('/') + '/'
    for loader in (cfg.train_dataloader, cfg.val_dataloader,
                   cfg.test_dataloader):
        loader.dataset.data_root = root
    for evaluator in (cfg.val_evaluator, cfg.test_evaluator):
        for metric in evaluator:
            metric.ann_file = root + metric.ann_file.split('/', 2)[-1] \
                if metric.ann_file.startswith('data/') else metric.ann_file
            if 'seg_prefix' in metric:
                metric.seg_prefix = root + 'annotations/panoptic_val/'
    if args.max_iters is not None:
        iters = args.max_iters
        scale = iters / cfg.train_cfg.max_iters
        cfg.train_cfg.max_iters = iters
        cfg.train_cfg.val_interval = iters
        cfg.default_hooks.checkpoint.interval = iters
        cfg.default_hooks.logger.interval = max(1, min(50, iters // 5))
        # the config's schedule, stretched to the new length
        for scheduler in cfg.param_scheduler:
            scheduler.begin = int(scheduler.begin * scale)
            scheduler.end = max(1, int(scheduler.end * scale))
            if 'milestones' in scheduler:
                scheduler.milestones = [
                    int(m * scale) for m in scheduler.milestones
                ]
    if getattr(args, 'cfg_options', None):
        cfg.merge_from_dict(args.cfg_options)
    cfg.randomness = dict(seed=args.seed)
    # mmengine keeps one visualizer per name in a process: a fresh name
    # makes this run log its learning curve under its own work_dir even
    # when main() runs twice in one process (tests, notebooks).
    cfg.visualizer.name = f'toy_quickstart_{time.time_ns()}'
    return cfg


def prepare_backbone(cfg, args, out_file):
    """Point a ``Pretrained`` backbone init of ``cfg`` at weights pretrained
    on the toy things, pretraining them into ``out_file`` unless that file
    holds weights for the same data and settings; with
    ``args.pretrain_iters == 0`` the backbone starts from scratch."""
    import torch

    from pretrain_backbone import pretrain_backbone
    init = cfg.model.backbone.get('init_cfg')
    if not init or init.get('type') != 'Pretrained':
        return None
    if args.pretrain_iters <= 0:
        cfg.model.backbone.init_cfg = None
        return None
    with open(osp.join(args.data_root, 'toy_meta.json')) as f:
        settings = dict(data=json.load(f), iters=args.pretrain_iters,
                        seed=args.seed, backbone=cfg.model.backbone.to_dict())
    # the weights do not depend on which stages the detector reads
    for key in ('init_cfg', 'out_indices'):
        settings['backbone'].pop(key, None)
    old = {}
    if osp.isfile(out_file):
        try:
            old = torch.load(out_file, map_location='cpu')
        except Exception as error:  # not ours or truncated: redo it
            print(f'      cannot read {out_file} ({error}); pretraining '
                  'again')
    if old.get('meta', {}).get('settings') == settings:
        print(f'      reused {out_file}')
    else:
        pretrain_backbone(args.data_root, out_file, cfg,
                          iters=args.pretrain_iters, seed=args.seed,
                          meta=dict(settings=settings))
    init.checkpoint = out_file
    return out_file


def learning_curve(log_dir):
    """(step, loss) pairs from mmengine's ``vis_data/scalars.json``."""
    path = osp.join(log_dir, 'vis_data', 'scalars.json')
    curve = []
    if osp.isfile(path):
        with open(path) as f:
            for line in f:
                record = json.loads(line)
                if 'loss' in record:
                    curve.append((record['step'], record['loss']))
    return curve


def render(runner, num_images, out_file):
    """Save image | ground truth | prediction rows for the first
    ``num_images`` validation images; returns the picture's (H, W)."""
    import mmcv
    import numpy as np
    import torch
    from mmdet.registry import VISUALIZERS
    from mmdet.structures import DetDataSample
    from mmengine.dataset import pseudo_collate

    from panseg_plugin.visualization import gt_panoptic_seg
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
        drawn.gt_panoptic_seg = gt_panoptic_seg(sample, len(meta['classes']))
        drawn.pred_panoptic_seg = sample.pred_panoptic_seg
        image = mmcv.imread(sample.img_path, channel_order='rgb')
        visualizer.add_datasample('toy', image, drawn, draw_gt=True,
                                  draw_pred=True, show=False)
        rows.append(np.concatenate([image, visualizer.get_image()], axis=1))
    picture = np.concatenate(rows, axis=0)
    mmcv.imwrite(mmcv.rgb2bgr(picture), out_file)
    return picture.shape[:2]


def main(argv=None):
    args = parse_args(argv)
    start = time.time()
    from mmengine.registry import init_default_scope
    from mmengine.runner import Runner

    import panseg_plugin  # noqa: F401
    from panseg_plugin.datasets import make_toy_panoptic

    print(f'[1/5] toy data set in {args.data_root}')
    info = make_toy_panoptic(args.data_root, num_train=args.num_train,
                             num_val=args.num_val, img_size=args.img_size,
                             seed=args.seed)
    print('      reused existing files' if info['skipped'] else
          f'      written in {time.time() - start:.1f}s')

    cfg = build_cfg(args)
    print(f'[2/5] backbone pretraining ({args.pretrain_iters} steps on '
          'crops of the training things)')
    pretrain_start = time.time()
    backbone = prepare_backbone(
        cfg, args, osp.join(args.work_dir, 'pretrain', 'r18-tiny_things.pth'))
    pretrain_s = time.time() - pretrain_start
    init_default_scope('mmdet')
    runner = Runner.from_cfg(cfg)
    print(f'[3/5] training {cfg.train_cfg.max_iters} iterations on '
          f'{torch_threads()} CPU threads (log every '
          f'{cfg.default_hooks.logger.interval})')
    runner.train()
    print('[4/5] evaluation on the validation split')
    metrics = runner.test()
    out_dir = osp.join(args.work_dir, 'quickstart')
    os.makedirs(out_dir, exist_ok=True)
    picture = osp.join(out_dir, 'val_predictions.png')
    print(f'[5/5] rendering {args.num_vis} validation images')
    size = render(runner, args.num_vis, picture)

    curve = learning_curve(runner.log_dir)
    summary = dict(
        metrics={k: float(v) for k, v in metrics.items()},
        learning_curve=curve,
        picture=picture,
        picture_size=list(size),
        pretrained_backbone=backbone,
        pretrain_s=round(pretrain_s, 1),
        wall_time_s=round(time.time() - start, 1))
    with open(osp.join(out_dir, 'summary.json'), 'w') as f:
        json.dump(summary, f, indent=1)
    print_report(summary, args, runner)
    return summary


def torch_threads():
    import torch
    return torch.get_num_threads()


def print_report(summary, args, runner):
    m = summary['metrics']
    get = lambda key: m.get(f'coco_panoptic/{key}', float('nan'))  # noqa
    print('\n' + '=' * 64)
    print('Panoptic SegFormer on the toy validation split')
    print(f'  {"":8s}{"PQ":>8s}{"SQ":>8s}{"RQ":>8s}')
    for name, suffix in (('All', ''), ('Things', '_th'), ('Stuff', '_st')):
        print(f'  {name:8s}' + ''.join(
            f'{get(k + suffix):8.1f}' for k in ('PQ', 'SQ', 'RQ')))
    if 'coco/segm_mAP' in m:
        print(f'  mask AP (things): {100 * m["coco/segm_mAP"]:.1f}')
    curve = summary['learning_curve']
    if curve:
        every = max(1, len(curve) // 8)
        points = curve[::every] + ([curve[-1]] if len(curve) % every != 1
                                   else [])
        print('  learning curve (iteration: loss): ' + ', '.join(
            f'{step}: {loss:.2f}' for step, loss in points))
    print(f'  wall time: {summary["wall_time_s"]:.0f}s')
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

"""Run settings shared by the quick start and the Mask2Former benchmark:
the toy config pointed at a data root and a work dir, optionally shortened,
and its backbone pointed at weights pretrained on the toy things."""
import json
import os.path as osp
import time

import torch
from mmengine.config import Config

from .pretrain import pretrain_backbone


def build_cfg(args):
    """The config of ``args.config`` for a run of the quick start.

    Args:
        args (argparse.Namespace): ``config``, ``data_root``, ``work_dir``,
            ``max_iters`` (None: the config's), ``seed`` and, optionally,
            ``cfg_options``.

    Returns:
        Config: Data, metrics and work dir moved; with ``max_iters`` the
        schedule, validation, checkpoint and log intervals stretched.
    """
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
    init = cfg.model.backbone.get('init_cfg')
    if not init or init.get('type') != 'Pretrained':
        return None
    if args.pretrain_iters <= 0:
        cfg.model.backbone.init_cfg = None
        return None
    with open(osp.join(args.data_root, 'toy_meta.json')) as f:
        settings = dict(data=json.load(f), iters=args.pretrain_iters,
                        seed=args.seed, backbone=cfg.model.backbone.to_dict())
    # the weights do not depend on which stages the detector reads, or
    # on which it freezes (pretraining trains them all)
    for key in ('init_cfg', 'out_indices', 'frozen_stages', 'norm_eval'):
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

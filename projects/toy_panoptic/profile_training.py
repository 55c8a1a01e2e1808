"""Where the quick start's time goes: one training iteration of the toy
config, stage by stage, and one backbone pretraining step.

    python projects/toy_panoptic/profile_training.py [--iters 30]

Runs in this process on the toy data (``data/toy_panoptic``, written by the
quick start or ``tools/dataset_converters/make_toy_panoptic.py``):

1. ``--iters`` training iterations done by hand in the order of
   ``model.train_step`` (data loading, data preprocessor, backbone + neck,
   encoder, location decoder, head forward (mask decoder, classes, masks,
   locations), training targets, matching, losses, backward, optimiser
   step with gradient clipping), each stage timed on its own; the matcher
   is timed inside the losses through a timing wrapper on this model's
   assigner object;
2. the same number of iterations of mmengine's own loop (``runner.train``,
   hooks and logging included), whose mean iteration time, compared with
   the sum of stages, shows the loop's own cost;
3. ``--iters`` pretraining steps of ``toy_panoptic.pretrain`` (crop
   batch, forward, backward, step).

Prints medians in milliseconds and each stage's share. The backbone starts
from its random initialisation (the stage times do not depend on the
weights; the matching sees the same number of segments).
"""
import argparse
import os.path as osp
import statistics
import tempfile
import time
from collections import defaultdict

import numpy as np
import torch
import torch.nn.functional as F
from mmengine.config import DictAction
from mmengine.hooks import Hook
from mmengine.registry import init_default_scope
from mmengine.runner import Runner
from torch import nn

from panseg_plugin.models.utils import panoptic_targets
from toy_panoptic.experiment import build_cfg
from toy_panoptic.pretrain import DEFAULT_CONFIG
from toy_panoptic.thing_crops import ThingCrops, pooled_features


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--config', default=DEFAULT_CONFIG)
    parser.add_argument('--data-root', default='data/toy_panoptic')
    parser.add_argument('--iters', type=int, default=30)
    parser.add_argument('--warmup', type=int, default=5)
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config keys, as in tools/train.py')
    return parser.parse_args(argv)


class StageTimer:
    """Wall time per named stage, one list of seconds per stage."""

    def __init__(self):
        self.times = defaultdict(list)
        self.current = defaultdict(float)

    def run(self, name, fn, *args, **kwargs):
        start = time.perf_counter()
        out = fn(*args, **kwargs)
        self.current[name] += time.perf_counter() - start
        return out

    def wrap(self, name, fn):
        return lambda *args, **kwargs: self.run(name, fn, *args, **kwargs)

    def next_iteration(self, record=True):
        if record:
            for name, seconds in self.current.items():
                self.times[name].append(seconds)
        self.current = defaultdict(float)

    def report(self, title, total=None):
        medians = {k: statistics.median(v) * 1e3
                   for k, v in self.times.items()}
        total = total or sum(medians.values())
        print(f'\n{title} (medians of {len(next(iter(self.times.values())))}'
              ' iterations)')
        for name, ms in medians.items():
            print(f'  {name:<34s} {ms:8.1f} ms  {100 * ms / total:5.1f}%')
        print(f'  {"sum":<34s} {sum(medians.values()):8.1f} ms')
        return medians


def build_runner(args, work_dir, max_iters):
    run_args = argparse.Namespace(config=args.config,
                                  data_root=args.data_root,
                                  work_dir=work_dir, max_iters=max_iters,
                                  seed=0, cfg_options=args.cfg_options)
    cfg = build_cfg(run_args)
    cfg.model.backbone.init_cfg = None
    cfg.default_hooks.checkpoint.interval = 10**9
    cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
    cfg.log_level = 'WARNING'
    init_default_scope('mmdet')
    return Runner.from_cfg(cfg)


def profile_train_step(runner, iters, warmup):
    """Stage times of ``iters`` hand-made iterations of ``train_step``."""
    model = runner.model
    model.train()
    optim_wrapper = runner.build_optim_wrapper(runner.cfg.optim_wrapper)
    loader = iter(runner.build_dataloader(runner.cfg.train_dataloader))
    head = model.bbox_head
    timer = StageTimer()
    head.assigner.assign = timer.wrap('matching (Hungarian, all layers)',
                                      head.assigner.assign)
    for step in range(warmup + iters):
        data = timer.run('data loading', next, loader)
        data = timer.run('data preprocessor', model.data_preprocessor, data,
                         True)
        inputs, samples = data['inputs'], data['data_samples']
        feats = timer.run('backbone + neck', model.extract_feat, inputs)
        enc_in, dec_in = timer.run('encoder', model.pre_transformer, feats,
                                   samples)
        enc_out = timer.run('encoder', model.forward_encoder, **enc_in)
        tmp, head_in = timer.run('location decoder', model.pre_decoder,
                                 **enc_out)
        dec_in.update(tmp)
        head_in.update(timer.run('location decoder', model.forward_decoder,
                                 **dec_in))
        outs = timer.run('head forward (mask decoder)', head, **head_in)
        size = outs.mask_preds.shape[-2:]
        gts = timer.run('training targets', lambda: [
            panoptic_targets(s, head.num_things_classes,
                             head.num_stuff_classes, size,
                             head.mask_loss_upsample) for s in samples])
        metas = [s.metainfo for s in samples]
        start = time.perf_counter()
        losses = head.loss_by_feat(outs.cls_scores, outs.mask_preds,
                                   outs.loc_preds, gts, metas)
        timer.current['losses (without matching)'] += \
            time.perf_counter() - start - \
            timer.current['matching (Hungarian, all layers)']
        loss, _ = model.parse_losses(losses)
        timer.run('backward', optim_wrapper.backward, loss)
        timer.run('optimiser step (+ clipping)', optim_wrapper.step)
        optim_wrapper.zero_grad()
        timer.next_iteration(record=step >= warmup)
    return timer


def runner_iteration_ms(args, iters, warmup):
    """Median iteration time of mmengine's loop (hooks, logging)."""
    with tempfile.TemporaryDirectory() as work_dir:
        # one more: a time is the gap between two iteration ends
        runner = build_runner(args, work_dir, warmup + iters + 1)
        times = []
        runner.register_hook(_IterTime(times), priority='LOWEST')
        runner.train()
    return statistics.median(times[warmup:]) * 1e3


class _IterTime(Hook):
    """A hook recording the wall time between iteration ends."""

    def __init__(self, times):
        self.times, self.last = times, None

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        now = time.perf_counter()
        if self.last is not None:
            self.times.append(now - self.last)
        self.last = now


def profile_pretraining(args, iters, warmup):
    """Stage times of pretraining steps (as ``toy_panoptic.pretrain``)."""
    from mmdet.registry import MODELS
    from mmengine.config import Config
    cfg = Config.fromfile(args.config)
    backbone_cfg = cfg.model.backbone.copy()
    backbone_cfg.init_cfg = None
    backbone = MODELS.build(backbone_cfg)
    prep = cfg.model.data_preprocessor
    crops = ThingCrops(args.data_root, 'train', 64, 'native', 16.0,
                       prep.mean, prep.std, 0)
    imgs, masks, _ = crops.batch([0])
    with torch.no_grad():
        width = pooled_features(backbone(imgs), masks, 'mask').size(1)
    head = nn.Linear(width, len(crops.label_of))
    optimizer = torch.optim.AdamW(
        list(backbone.parameters()) + list(head.parameters()), lr=1e-3)
    rng = np.random.default_rng(0)
    timer = StageTimer()
    backbone.train()
    for step in range(warmup + iters):
        ids = rng.choice(len(crops.anns), 64)
        imgs, masks, labels = timer.run('crop batch (64 crops)', crops.batch,
                                        ids)
        logits = timer.run('forward', lambda: head(pooled_features(
            backbone(imgs), masks, 'mask')))
        loss = F.cross_entropy(logits, labels)
        optimizer.zero_grad()
        timer.run('backward', loss.backward)
        timer.run('optimiser step', optimizer.step)
        timer.next_iteration(record=step >= warmup)
    return timer


def main(argv=None):
    args = parse_args(argv)
    if not osp.isdir(args.data_root):
        raise SystemExit(f'{args.data_root} not found: write the toy data '
                         'first (python tools/dataset_converters/'
                         'make_toy_panoptic.py)')
    print(f'{torch.get_num_threads()} torch threads, config {args.config}')
    with tempfile.TemporaryDirectory() as work_dir:
        runner = build_runner(args, work_dir, args.warmup + args.iters)
        stages = profile_train_step(runner, args.iters, args.warmup)
    sums = stages.report('training iteration, by stage')
    loop_ms = runner_iteration_ms(args, args.iters, args.warmup)
    print(f'  mmengine loop: {loop_ms:.1f} ms per iteration (hooks, logging'
          f' and loop: {loop_ms - sum(sums.values()):+.1f} ms)')
    profile_pretraining(args, args.iters, args.warmup).report(
        'backbone pretraining step')


if __name__ == '__main__':
    main()

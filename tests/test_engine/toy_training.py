"""Shared helpers of the engine tests: a tiny Panoptic SegFormer on a tiny
toy data set, trained by the repository's own tools.

Not a test module (no ``test_`` prefix); the test modules next to it import
it by name (pytest puts their folder on ``sys.path``).
"""
import os
import os.path as osp
from contextlib import contextmanager
from pathlib import Path
from unittest import mock

import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from panseg_plugin.testing import load_script, tiny_panoptic_segformer_cfg
from toy_panoptic import TOY_METAINFO, make_toy_panoptic

REPO = Path(__file__).resolve().parents[2]
TOY_CONFIG = (REPO / 'projects' / 'toy_panoptic' / 'configs' /
              'panoptic-segformer_r18-tiny_toy-panoptic.py')


def make_tiny_toy(out_dir, num_train=8, num_val=5):
    """A toy panoptic data set small enough for a few CPU iterations
    (odd-sized 72x56 images)."""
    return make_toy_panoptic(
        str(out_dir), num_train=num_train, num_val=num_val,
        img_size=(72, 56), seed=0)


def load_tool(name):
    """``tools/<name>.py`` as a module (``tools`` is not a package)."""
    return load_script(REPO / 'tools' / f'{name}.py', f'panseg_tools_{name}')


@contextmanager
def single_thread():
    """One torch thread: on a shared 2-core machine two threads fighting
    another process are tens of times slower than one."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def toy_train_cfg(data_root, max_iters=4, checkpoint_interval=2,
                  val_interval=None, batch_size=2, num_workers=0):
    """The toy project's config with the tiny model, ``data_root`` and a
    short schedule: LR halved after ``max_iters // 2`` iterations, fixed
    seed, deterministic algorithms, a checkpoint every
    ``checkpoint_interval`` iterations (one kept), validation (PQ only)
    every ``val_interval`` iterations or never."""
    cfg = Config.fromfile(str(TOY_CONFIG))
    cfg.model = tiny_panoptic_segformer_cfg(
        num_things_classes=len(TOY_METAINFO['thing_classes']),
        num_stuff_classes=len(TOY_METAINFO['stuff_classes']))
    for loader in (cfg.train_dataloader, cfg.val_dataloader):
        loader.dataset.data_root = data_root
        loader.batch_size = batch_size
        loader.num_workers = num_workers
        loader.persistent_workers = num_workers > 0
    cfg.test_dataloader = cfg.val_dataloader
    cfg.val_evaluator = dict(
        type='CocoPanopticMetric',
        ann_file=osp.join(data_root, 'annotations', 'panoptic_val.json'),
        seg_prefix=osp.join(data_root, 'annotations', 'panoptic_val'))
    cfg.test_evaluator = cfg.val_evaluator
    # No validation unless asked for (the loop also validates after the
    # last iteration when val_begin allows it).
    cfg.train_cfg = dict(
        type='IterBasedTrainLoop', max_iters=max_iters,
        val_interval=val_interval or max_iters,
        val_begin=1 if val_interval else max_iters + 1)
    cfg.param_scheduler = [
        dict(type='MultiStepLR', by_epoch=False, begin=0, end=max_iters,
             milestones=[max_iters // 2], gamma=0.5)
    ]
    cfg.default_hooks.logger.interval = 1
    cfg.default_hooks.checkpoint = dict(
        type='CheckpointHook', by_epoch=False,
        interval=checkpoint_interval, max_keep_ckpts=1)
    # mmengine's plain behaviour; each test adds the plugin's hooks it tests
    cfg.custom_hooks = []
    cfg.randomness = dict(seed=0, deterministic=True)
    # One visualizer (and its vis backend's folder) per experiment: with a
    # fixed name every runner of the process would share the first one.
    cfg.visualizer.pop('name', None)
    return cfg


class CrashAt(Hook):
    """Raises :class:`SimulatedCrash` after iteration ``iters`` has
    finished (and been checkpointed: lowest priority)."""

    priority = 'LOWEST'

    def __init__(self, iters):
        self.iters = iters

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        if runner.iter + 1 == self.iters:
            raise SimulatedCrash(f'stopped after iteration {self.iters}')


class SimulatedCrash(RuntimeError):
    pass


@contextmanager
def unformatted_config_text():
    """Skip yapf's beautification of ``Config.pretty_text``: about 1.3 s a
    call on 2 busy cores, and a run formats its config 5-7 times (dumps,
    log, every checkpoint's meta). The text stays valid Python."""
    with mock.patch('mmengine.config.config.FormatCode',
                    lambda text, **kwargs: (text, False)):
        yield


def train(train_tool, cfg, work_dir, name, *args, hooks=()):
    """``tools/train.py CONFIG --work-dir WORK_DIR ARGS`` in this process
    (with ``hooks`` registered into the runner); returns the runner, also
    when a :class:`SimulatedCrash` stopped training."""
    from mmengine.runner import Runner
    os.makedirs(str(work_dir), exist_ok=True)
    cfg_file = osp.join(str(work_dir), f'{name}_config.py')
    with unformatted_config_text():
        cfg.dump(cfg_file)
        built = train_tool.build_config(train_tool.parse_args(
            [cfg_file, '--work-dir', str(work_dir), *args]))
        built.experiment_name = name  # own message hub, logger, visualizer
        runner = Runner.from_cfg(built)
        for hook in hooks:
            runner.register_hook(hook)
        try:
            runner.train()
        except SimulatedCrash:
            pass
    return runner


def weights(runner):
    """A copy of the runner's model state dict."""
    model = runner.model.module if is_model_wrapper(runner.model) \
        else runner.model
    return {k: v.detach().clone() for k, v in model.state_dict().items()}

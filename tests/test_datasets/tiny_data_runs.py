"""Shared helpers of the data-path tests: a real data set config run with
the tiny model on tiny files for 2 iterations, then tested.

Not a test module (no ``test_`` prefix); the test modules next to it import
it by name (pytest puts their folder on ``sys.path``), those of other
folders by its location.
"""
import itertools
import os.path as osp
from contextlib import contextmanager
from unittest import mock

import torch
from mmengine.config import Config

from panseg_plugin.testing import tiny_panoptic_segformer_cfg

REPO = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
CONFIG_DIR = osp.join(REPO, 'configs', 'panoptic_segformer')
_RUN_IDS = itertools.count()


@contextmanager
def quick_runner():
    """One torch thread (a shared 2-core machine) and no yapf formatting of
    the config text (about a second a call, several calls a run)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with mock.patch('mmengine.config.config.FormatCode',
                        lambda text, **kwargs: (text, False)):
            yield
    finally:
        torch.set_num_threads(threads)


def _shrink(pipeline, short_sides=(40, 48), crop=(32, 40)):
    """The config's pipeline at the size of tiny test images: the same
    transforms, smaller scales."""
    for transform in pipeline:
        kind = transform['type']
        if kind == 'RandomChoiceResize':
            transform['scales'] = [(4 * s, s) for s in short_sides]
        elif kind == 'RandomCrop':
            transform['crop_size'] = crop
        elif kind == 'Resize':
            transform['scale'] = (4 * short_sides[-1], short_sides[-1])
    return pipeline


def tiny_run_cfg(config_name, data_root, work_dir, num_things, num_stuff,
                 max_iters=2):
    """``configs/panoptic_segformer/<config_name>`` with the tiny model
    (``semantic_on``, no instances), ``data_root``, small scales, no data
    loader workers and ``max_iters`` iterations without validation."""
    cfg = Config.fromfile(osp.join(CONFIG_DIR, config_name))
    old_root = cfg.data_root
    model = tiny_panoptic_segformer_cfg(num_things_classes=num_things,
                                        num_stuff_classes=num_stuff)
    model['panoptic_fusion_head'].update(semantic_on=True, instance_on=False)
    cfg.model = model
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loader = cfg[key]
        loader.dataset.data_root = data_root
        loader.num_workers = 0
        loader.persistent_workers = False
        _shrink(loader.dataset.pipeline)
    for key in ('val_evaluator', 'test_evaluator'):
        for metric in cfg[key]:
            for arg in ('ann_file', 'seg_prefix'):
                if arg in metric:
                    metric[arg] = metric[arg].replace(
                        old_root, data_root.rstrip('/') + '/')
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters,
                         val_interval=max_iters, val_begin=max_iters + 1)
    cfg.param_scheduler = [dict(type='PolyLR', power=0.9, begin=0,
                                end=max_iters, by_epoch=False)]
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=1)
    cfg.randomness = dict(seed=0)
    cfg.visualizer.pop('name', None)
    cfg.work_dir = str(work_dir)
    cfg.experiment_name = f'tiny_data_run{next(_RUN_IDS)}'
    return cfg


def train_and_test(cfg):
    """Train ``cfg`` with mmengine's runner, then test it; returns the
    runner and the test metrics."""
    from mmengine.runner import Runner
    with quick_runner():
        runner = Runner.from_cfg(cfg)
        runner.train()
        metrics = runner.test()
    return runner, metrics

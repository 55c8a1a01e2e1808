"""Training N iterations in one go and N/2 + ``--resume`` N/2 give
bit-identical weights on the CPU with
:class:`ExactResumeHook`.

The tiny model has dropout (mmcv's deformable attention, p=0.1), the
training pipeline flips at random and the sampler shuffles, so every
generator matters.
"""
import glob
import os.path as osp
from types import SimpleNamespace

import pytest
import torch
from toy_training import (CrashAt, load_tool, make_tiny_toy, single_thread,
                          toy_train_cfg, train, weights)

import panseg_plugin.engine.hooks.atomic_checkpoint_hook  # noqa
from panseg_plugin.engine.hooks.exact_resume_hook import (
    CHECKPOINT_KEY, ExactResumeHook, get_rng_state)

MAX_ITERS = 4
STOP_AT = MAX_ITERS // 2


@pytest.fixture(scope='module')
def toy(tmp_path_factory):
    return make_tiny_toy(tmp_path_factory.mktemp('toy_resume'))


@pytest.fixture(scope='module')
def train_tool():
    return load_tool('train')


def _cfg(toy, hook=True, **kwargs):
    cfg = toy_train_cfg(toy['data_root'], max_iters=MAX_ITERS,
                        checkpoint_interval=STOP_AT, **kwargs)
    if hook:
        cfg.custom_hooks = [dict(type='ExactResumeHook')]
        cfg.default_hooks.checkpoint.type = 'AtomicCheckpointHook'
    return cfg


def _stop_and_resume(train_tool, cfg, work_dir, name):
    """Train to STOP_AT and crash, then ``--resume`` to the end."""
    with single_thread():
        train(train_tool, cfg.copy(), work_dir, f'{name}_part1',
              hooks=[CrashAt(STOP_AT)])
        assert osp.isfile(osp.join(work_dir, f'iter_{STOP_AT}.pth'))
        runner = train(train_tool, cfg.copy(), work_dir, f'{name}_part2',
                       '--resume')
    assert runner.iter == MAX_ITERS
    return runner


def _straight(train_tool, cfg, work_dir, name):
    with single_thread():
        runner = train(train_tool, cfg.copy(), work_dir, name)
    assert runner.iter == MAX_ITERS
    return runner


def _differing(a, b):
    assert a.keys() == b.keys()
    return sorted(k for k in a if not torch.equal(a[k], b[k]))


@pytest.mark.parametrize('num_workers', [0, 1])
def test_resume_is_bit_identical(toy, train_tool, tmp_path, num_workers):
    # Validation after STOP_AT in the straight run only (the interrupted one
    # stops before it): the hook makes validation neutral for training.
    cfg = _cfg(toy, val_interval=STOP_AT, num_workers=num_workers)
    straight = _straight(train_tool, cfg, tmp_path / 'straight', 'straight')
    resumed = _stop_and_resume(train_tool, cfg, tmp_path / 'resumed',
                               'resumed')
    assert _differing(weights(straight), weights(resumed)) == []
    # The optimizer continued from the same moments.
    assert str(straight.optim_wrapper.state_dict()) == \
        str(resumed.optim_wrapper.state_dict())
    assert straight.optim_wrapper.get_lr() == resumed.optim_wrapper.get_lr()


def test_mmengine_alone_resumes_with_other_random_numbers(
        toy, train_tool, tmp_path):
    """Why the hook exists (and proof that the test above can fail):
    without it, dropout after resuming draws from freshly seeded
    generators."""
    cfg = _cfg(toy, hook=False)
    straight = _straight(train_tool, cfg, tmp_path / 'straight', 'plain_a')
    resumed = _stop_and_resume(train_tool, cfg, tmp_path / 'resumed',
                               'plain_b')
    assert _differing(weights(straight), weights(resumed))


def test_resume_without_a_configured_seed(toy, train_tool, tmp_path):
    """``randomness=dict(seed=None)``: the interrupted run drew a seed, the
    resumed one draws another and builds its sampler with it before
    mmengine re-seeds from the checkpoint; the hook rebuilds the
    dataloader with the checkpoint's seed."""
    cfg = _cfg(toy)
    cfg.randomness = dict(seed=None)
    resumed = _stop_and_resume(train_tool, cfg, tmp_path / 'resumed',
                               'noseed_b')
    seed = resumed.seed
    assert resumed.train_dataloader.sampler.seed == seed
    cfg.randomness = dict(seed=seed)
    straight = _straight(train_tool, cfg, tmp_path / 'straight', 'noseed_a')
    assert _differing(weights(straight), weights(resumed)) == []


def test_checkpoint_records_generators_and_sampler(toy, train_tool,
                                                   tmp_path):
    cfg = _cfg(toy)
    with single_thread():
        train(train_tool, cfg, tmp_path, 'record', hooks=[CrashAt(STOP_AT)])
    (path, ) = glob.glob(str(tmp_path / 'iter_*.pth'))
    state = torch.load(path, map_location='cpu',
                       weights_only=False)[CHECKPOINT_KEY]
    assert state['version'] == 1
    assert len(state['rng']) == 1  # one process
    assert set(state['rng'][0]) >= {'python', 'numpy', 'torch'}
    assert state['sampler'] == dict(
        type='InfiniteSampler', seed=0, shuffle=True, dataset_len=8,
        world_size=1)


def test_load_from_without_resume_restores_nothing():
    """Fine-tuning from a checkpoint (``load_from``, iteration 0) starts
    from the run's own seed, not from the checkpoint's generators."""
    saved = get_rng_state()
    torch.rand(3)
    hook = ExactResumeHook()
    hook.after_load_checkpoint(None, {CHECKPOINT_KEY: dict(
        version=1, rng=[saved], sampler={})})
    loop = SimpleNamespace(iter=0, epoch=0, dataloader_iterator=iter([]))
    current = torch.get_rng_state()
    hook.before_train(SimpleNamespace(train_loop=loop))
    assert torch.equal(torch.get_rng_state(), current)
    assert hook._loaded is None


def test_distributed_states_are_gathered_only_when_a_checkpoint_is_saved(
        monkeypatch):
    """With several ranks, the generator states are gathered (a collective)
    at the iterations where a CheckpointHook saves, not on every one."""
    from mmengine.hooks import CheckpointHook

    from panseg_plugin.engine.hooks import ExactResumeHook
    from panseg_plugin.engine.hooks import exact_resume_hook as module

    calls = []
    monkeypatch.setattr(module, 'get_dist_info', lambda: (0, 2))
    monkeypatch.setattr(module, 'all_gather_object',
                        lambda obj: calls.append(1) or [obj, obj])

    class FakeRunner:
        max_iters = 10
        iter = 0
        hooks = [CheckpointHook(interval=4, by_epoch=False)]

    runner, hook = FakeRunner(), ExactResumeHook()
    gathered = []
    for it in range(FakeRunner.max_iters):
        runner.iter = it
        before = len(calls)
        hook.after_train_iter(runner, it)
        if len(calls) > before:
            gathered.append(it + 1)
    # iterations 4 and 8 by the interval, 10 as the last (save_last)
    assert gathered == [4, 8, 10]
    assert hook._train_states_iter == 9

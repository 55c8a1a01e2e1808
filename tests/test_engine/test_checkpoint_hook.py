"""A save interrupted half-way never costs the last complete checkpoint
(:class:`AtomicCheckpointHook`)."""
import os
import os.path as osp

import pytest
import torch
from mmengine.fileio.backends import LocalBackend
from toy_training import (SimulatedCrash, load_tool, make_tiny_toy,
                          single_thread, toy_train_cfg, train, weights)

import panseg_plugin.engine.hooks.atomic_checkpoint_hook  # noqa
import panseg_plugin.engine.hooks.exact_resume_hook  # noqa

MAX_ITERS, INTERVAL = 6, 2


@pytest.fixture(scope='module')
def toy(tmp_path_factory):
    return make_tiny_toy(tmp_path_factory.mktemp('toy_ckpt'))


@pytest.fixture(scope='module')
def train_tool():
    return load_tool('train')


def _cfg(toy, hook_type):
    cfg = toy_train_cfg(toy['data_root'], max_iters=MAX_ITERS,
                        checkpoint_interval=INTERVAL)
    cfg.default_hooks.checkpoint.type = hook_type
    cfg.custom_hooks = [dict(type='ExactResumeHook')]
    return cfg


def _kill_second_checkpoint_write(monkeypatch):
    """The second checkpoint's bytes stop half-way, as when the process is
    killed or the disk fills up while writing."""
    real_put = LocalBackend.put
    written = []

    def put(self, obj, filepath):
        if '.pth' in osp.basename(str(filepath)):
            written.append(str(filepath))
            if len(written) == 2:
                with open(filepath, 'wb') as f:
                    f.write(obj[:len(obj) // 2])
                raise SimulatedCrash(f'killed while writing {filepath}')
        return real_put(self, obj, filepath)

    monkeypatch.setattr(LocalBackend, 'put', put)
    return written


def _last_checkpoint(work_dir):
    with open(osp.join(work_dir, 'last_checkpoint')) as f:
        return f.read().strip()


def _files(work_dir):
    return sorted(n for n in os.listdir(work_dir) if '.pth' in n)


def test_interrupted_save_keeps_previous_checkpoint_and_resumes(
        toy, train_tool, tmp_path, monkeypatch):
    cfg = _cfg(toy, 'AtomicCheckpointHook')
    work_dir = str(tmp_path / 'run')
    written = _kill_second_checkpoint_write(monkeypatch)
    with single_thread():
        train(train_tool, cfg.copy(), work_dir, 'atomic_1')
    assert written[1].endswith('iter_4.pth.tmp')

    # The complete checkpoint of iteration 2 survived (max_keep_ckpts=1
    # deletes it only once iteration 4's is safely in place) and
    # last_checkpoint still names it.
    previous = osp.join(work_dir, 'iter_2.pth')
    assert _files(work_dir) == ['iter_2.pth', 'iter_4.pth.tmp']
    assert _last_checkpoint(work_dir) == previous
    assert torch.load(previous, map_location='cpu',
                      weights_only=False)['meta']['iter'] == 2

    monkeypatch.undo()
    with single_thread():
        resumed = train(train_tool, cfg.copy(), work_dir, 'atomic_2',
                        '--resume')
        straight = train(train_tool, cfg.copy(), str(tmp_path / 'straight'),
                         'atomic_straight')
    assert resumed.iter == MAX_ITERS
    assert _files(work_dir) == ['iter_6.pth']  # stale .tmp removed too
    assert _last_checkpoint(work_dir) == osp.join(work_dir, 'iter_6.pth')
    # Nothing of the crash shows in the result.
    a, b = weights(straight), weights(resumed)
    assert [k for k in a if not torch.equal(a[k], b[k])] == []


def test_mmengine_checkpoint_hook_loses_the_checkpoint(toy, train_tool,
                                                       tmp_path,
                                                       monkeypatch):
    """Why the hook exists: mmengine deletes iteration 2's checkpoint before
    writing iteration 4's, which is left truncated, and last_checkpoint
    names the deleted file, so auto-resume fails."""
    cfg = _cfg(toy, 'CheckpointHook')
    work_dir = str(tmp_path / 'run')
    _kill_second_checkpoint_write(monkeypatch)
    with single_thread():
        train(train_tool, cfg.copy(), work_dir, 'plain_1')
    assert _files(work_dir) == ['iter_4.pth']
    with pytest.raises(Exception):
        torch.load(osp.join(work_dir, 'iter_4.pth'), weights_only=False)
    assert _last_checkpoint(work_dir) == osp.join(work_dir, 'iter_2.pth')
    monkeypatch.undo()
    with single_thread(), pytest.raises(FileNotFoundError):
        train(train_tool, cfg.copy(), work_dir, 'plain_2', '--resume')

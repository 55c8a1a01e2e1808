"""Safe checkpoint loading on torch >= 2.6 (weights_only=True by default):
mmengine's own checkpoints load, resume and ``load_from`` work with no
environment variable, and a pickle that would run code is refused with an
error naming the file, its global and the opt-in."""
import copy
import itertools
import json
import os
import pickle
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmengine.hooks import Hook
from mmengine.model import BaseModel
from mmengine.registry import DefaultScope
from mmengine.runner import Runner
from torch import nn

import panseg_plugin  # noqa: F401
from panseg_plugin.engine.hooks import ExactResumeHook
from panseg_plugin.utils import (UnsafeCheckpointError,
                                 explain_unsafe_checkpoint)
from panseg_plugin.utils.checkpoint_safety import (
    history_buffer_method, mmengine_checkpoint_types)

_RUN_IDS = itertools.count()


@pytest.fixture(scope='module', autouse=True)
def mmdet_scope_afterwards():
    """The runners here use mmengine's scope; later tests get mmdet's."""
    yield
    DefaultScope.get_instance(f'after-{__name__}', scope_name='mmdet')


class ToyModel(BaseModel):
    """y = Linear(x); inputs (B, 2), targets (B, 1)."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(2, 1)

    def forward(self, inputs, targets=None, mode='tensor'):
        out = self.linear(inputs)  # (B, 1)
        if mode == 'loss':
            return dict(loss_mse=F.mse_loss(out, targets))
        return out


class ToyDataset(torch.utils.data.Dataset):
    """8 samples: inputs (2,), targets (1,) = their sum."""

    def __len__(self):
        return 8

    def __getitem__(self, idx):
        inputs = torch.tensor([idx / 8.0, 1.0])
        return dict(inputs=inputs, targets=inputs.sum(0, keepdim=True))


class RecordHook(Hook):
    """Records the state the loop starts from and the iterations it runs."""

    def __init__(self):
        self.start_iter = None
        self.start_optim = None
        self.start_weights = None
        self.iters = []

    def before_train(self, runner):
        self.start_iter = runner.iter
        self.start_optim = copy.deepcopy(runner.optim_wrapper.state_dict())
        self.start_weights = copy.deepcopy(runner.model.state_dict())

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        self.iters.append(runner.iter)


def make_runner(work_dir, max_iters=None, **kwargs):
    """A CPU Runner of :class:`ToyModel`; ``max_iters=None`` builds no
    training loop. Adam: its ``step`` state counts resumed iterations."""
    train = {}
    if max_iters is not None:
        train = dict(
            train_dataloader=dict(
                dataset=ToyDataset(),
                sampler=dict(type='InfiniteSampler', shuffle=False),
                collate_fn=dict(type='default_collate'),
                batch_size=2,
                num_workers=0),
            optim_wrapper=dict(optimizer=dict(type='Adam', lr=0.01)),
            train_cfg=dict(by_epoch=False, max_iters=max_iters))
    return Runner(
        model=ToyModel(),
        work_dir=str(work_dir),
        default_hooks=dict(
            checkpoint=dict(type='CheckpointHook', interval=2,
                            by_epoch=False),
            logger=dict(type='LoggerHook', interval=1)),
        log_processor=dict(by_epoch=False),
        randomness=dict(seed=0),
        default_scope='mmengine',
        # Runners built in the same second must not share loggers.
        experiment_name=f'toy{next(_RUN_IDS)}',
        **train,
        **kwargs)


def adam_steps(optim_state):
    return sorted(float(s['step']) for s in optim_state['state'].values())


def trusted_load(path):
    return torch.load(path, map_location='cpu', weights_only=False)


@pytest.fixture(scope='module')
def trained_dir(tmp_path_factory):
    """Work dir of a 4-iteration run with checkpoints at iterations 2, 4,
    saved with the exact-resume states (numpy random state included) and a
    numpy scalar in the message hub, as a best score would be."""
    work_dir = tmp_path_factory.mktemp('toy_train')
    runner = make_runner(work_dir, max_iters=4,
                         custom_hooks=[ExactResumeHook()])
    runner.message_hub.update_info('best_score', np.float64(0.5))
    runner.train()
    return work_dir


def test_training_saves_checkpoints(trained_dir):
    assert {'iter_2.pth', 'iter_4.pth', 'last_checkpoint'} <= set(
        os.listdir(trained_dir))
    ckpt = trusted_load(trained_dir / 'iter_4.pth')
    assert ckpt['meta']['iter'] == 4
    assert adam_steps(ckpt['optimizer']) == [4.0, 4.0]
    assert 'exact_resume_state' in ckpt


def test_checkpoint_needs_exactly_the_allowed_types(trained_dir):
    """Without the plugin torch's safe loader refuses an mmengine
    checkpoint, and every global it names beyond torch's defaults is one
    the plugin allows."""
    code = ('import json, torch\n'
            f'path = {str(trained_dir / "iter_4.pth")!r}\n'
            'try:\n'
            '    torch.load(path)\n'
            '    refused = False\n'
            'except Exception as err:\n'
            '    refused = "weights_only" in str(err)\n'
            'print(json.dumps([refused, torch.serialization.'
            'get_unsafe_globals_in_checkpoint(path)]))\n')
    proc = subprocess.run([sys.executable, '-c', code], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    refused, needed = json.loads(proc.stdout.strip().splitlines()[-1])
    assert refused
    allowed = {
        t[1] if isinstance(t, tuple) else f'{t.__module__}.{t.__qualname__}'
        for t in mmengine_checkpoint_types()
    }
    assert needed and set(needed) <= allowed, set(needed) - allowed


def test_torch_safe_load_reads_mmengine_checkpoints(trained_dir):
    ckpt = torch.load(trained_dir / 'iter_4.pth', map_location='cpu',
                      weights_only=True)
    assert ckpt['meta']['iter'] == 4
    assert ckpt['message_hub']['runtime_info']['best_score'] == 0.5


def test_resume_continues_from_last_checkpoint(trained_dir, tmp_path):
    work_dir = tmp_path / 'resume'
    shutil.copytree(trained_dir, work_dir)
    ckpt = trusted_load(trained_dir / 'iter_4.pth')
    record = RecordHook()
    runner = make_runner(
        work_dir, max_iters=6, resume=True, custom_hooks=[record])
    runner.train()

    assert record.start_iter == 4
    assert record.iters == [4, 5]
    assert runner.iter == 6
    for name, value in ckpt['state_dict'].items():
        torch.testing.assert_close(record.start_weights[name], value)
    assert adam_steps(record.start_optim) == [4.0, 4.0]
    for key, state in ckpt['optimizer']['state'].items():
        torch.testing.assert_close(
            record.start_optim['state'][key]['exp_avg'], state['exp_avg'])
    assert adam_steps(runner.optim_wrapper.state_dict()) == [6.0, 6.0]
    assert trusted_load(work_dir / 'iter_6.pth')['meta']['iter'] == 6


def test_load_from_loads_weights_only(trained_dir, tmp_path):
    ckpt = trusted_load(trained_dir / 'iter_2.pth')
    runner = make_runner(tmp_path, load_from=str(trained_dir / 'iter_2.pth'))
    runner.load_or_resume()
    assert runner.iter == 0
    state = runner.model.state_dict()
    assert set(state) == set(ckpt['state_dict'])
    for name, value in ckpt['state_dict'].items():
        torch.testing.assert_close(state[name], value)


class Payload:
    """Pickles to a call of ``os.system``: loading it runs a command."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f'touch {self.marker}', )


@pytest.fixture()
def malicious(tmp_path):
    path = tmp_path / 'evil.pth'
    marker = tmp_path / 'payload_ran'
    torch.save(dict(state_dict={}, meta=Payload(marker)), path)
    return path, marker


def test_malicious_checkpoint_is_refused_and_its_payload_never_runs(
        malicious, tmp_path):
    path, marker = malicious
    runner = make_runner(tmp_path / 'work')
    with pytest.raises(UnsafeCheckpointError) as info:
        with explain_unsafe_checkpoint():
            runner.load_checkpoint(str(path))
    message = str(info.value)
    assert str(path) in message
    assert 'system' in info.value.offending
    assert '--trust-checkpoint' in message
    assert not marker.exists()
    # also through mmengine's loader without the explanation
    with pytest.raises(pickle.UnpicklingError):
        runner.load_checkpoint(str(path))
    assert not marker.exists()


def test_trusting_a_checkpoint_is_an_explicit_opt_in(malicious):
    path, marker = malicious
    code = ('import panseg_plugin\n'
            'from panseg_plugin.utils import trust_checkpoints\n'
            'from mmengine.runner.checkpoint import _load_checkpoint\n'
            'trust_checkpoints()\n'
            f'_load_checkpoint({str(path)!r})\n')
    proc = subprocess.run([sys.executable, '-c', code], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert marker.exists()


def test_allowed_getattr_reaches_only_history_buffer_statistics():
    from mmengine.logging import HistoryBuffer
    code = ('from mmengine.logging import HistoryBuffer\n'
            'import panseg_plugin.utils.checkpoint_safety as c\n'
            'assert not HistoryBuffer._statistics_methods\n'
            'assert c.history_buffer_method(HistoryBuffer, "min") is '
            'HistoryBuffer.min\n')
    # a fresh process, before any HistoryBuffer exists (as in a resume)
    proc = subprocess.run([sys.executable, '-c', code], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert history_buffer_method(HistoryBuffer, 'mean') is HistoryBuffer.mean
    with pytest.raises(pickle.UnpicklingError, match='refused getattr'):
        history_buffer_method(HistoryBuffer, '__init__')
    with pytest.raises(pickle.UnpicklingError, match='refused getattr'):
        history_buffer_method(os, 'system')

"""Tests of the import-time environment checks, of checkpoint save/resume on
torch >= 2.6 (weights_only=True by default) and of the train/test tools."""
import copy
import glob
import itertools
import json
import math
import os
import os.path as osp
import pickle
import shutil
import subprocess
import sys

import mmcv
import pytest
import torch
import torch.nn.functional as F
from mmengine.hooks import Hook
from mmengine.model import BaseModel
from mmengine.runner import Runner
from mmengine.runner.checkpoint import CheckpointLoader, load_from_local
from torch import nn

import panseg_plugin  # noqa: F401  (patches the checkpoint loader)
from panseg_plugin.utils.env_check import (_load_trusted_local,
                                           check_versions)

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
_RUN_IDS = itertools.count()


# --------------------------------------------------------------- versions
def test_check_versions_accepts_this_environment():
    check_versions()


def test_check_versions_rejects_wrong_mmcv(monkeypatch):
    monkeypatch.setattr(mmcv, '__version__', '2.2.0')
    with pytest.raises(ImportError, match='mmcv==2.1.0') as info:
        check_versions()
    assert 'mmcv==2.2.0 is installed' in str(info.value)


def test_check_versions_rejects_mmcv_without_ops(monkeypatch):
    # A None entry in sys.modules makes `import mmcv._ext` raise.
    monkeypatch.setitem(sys.modules, 'mmcv._ext', None)
    with pytest.raises(ImportError, match='mmcv._ext is missing'):
        check_versions()


# ------------------------------------------------------- checkpoint resume
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
    """Work dir of a 4-iteration run with checkpoints at iterations 2, 4."""
    work_dir = tmp_path_factory.mktemp('toy_train')
    make_runner(work_dir, max_iters=4).train()
    return work_dir


def test_training_saves_checkpoints(trained_dir):
    assert {'iter_2.pth', 'iter_4.pth', 'last_checkpoint'} <= set(
        os.listdir(trained_dir))
    ckpt = trusted_load(trained_dir / 'iter_4.pth')
    assert ckpt['meta']['iter'] == 4
    assert adam_steps(ckpt['optimizer']) == [4.0, 4.0]


def test_plain_torch_load_refuses_mmengine_checkpoints(trained_dir):
    """Why the patch exists: torch>=2.6 loads with weights_only=True."""
    with pytest.raises(pickle.UnpicklingError, match='weights_only'):
        torch.load(trained_dir / 'iter_4.pth', map_location='cpu')


def test_plugin_replaces_local_loader():
    assert CheckpointLoader._schemes[''] is _load_trusted_local


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


def test_resume_fails_without_the_patch(trained_dir, tmp_path, monkeypatch):
    """With mmengine's own local loader back, the same file cannot load."""
    schemes = dict(CheckpointLoader._schemes)
    schemes[''] = load_from_local
    monkeypatch.setattr(CheckpointLoader, '_schemes', schemes)
    runner = make_runner(tmp_path)
    with pytest.raises(pickle.UnpicklingError, match='weights_only'):
        runner.load_checkpoint(str(trained_dir / 'iter_4.pth'))


# ------------------------------------------------------------------- tools
def run_tool(args, env_path=None, timeout=300):
    """Run ``python tools/<args>`` from outside the repo; returns the
    CompletedProcess with stdout and stderr merged."""
    env = dict(os.environ)
    if env_path is not None:
        env['PYTHONPATH'] = os.pathsep.join(
            [str(env_path), env.get('PYTHONPATH', '')])
    return subprocess.run(
        [sys.executable] + [str(a) for a in args],
        cwd=str(env_path or REPO_ROOT),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout)


@pytest.mark.parametrize('tool, flags', [
    ('train.py', ['--amp', '--auto-scale-lr', '--resume', '--launcher']),
    ('test.py', ['--out', '--show-dir', '--wait-time', '--launcher']),
])
def test_tool_help(tool, flags):
    proc = run_tool([osp.join(REPO_ROOT, 'tools', tool), '--help'])
    assert proc.returncode == 0, proc.stdout
    for flag in flags + ['--cfg-options', '--local_rank']:
        assert flag in proc.stdout


TOY_MODULES = '''
import torch
import torch.nn.functional as F
from mmengine.evaluator import BaseMetric
from mmengine.model import BaseModel
from torch import nn

from mmdet.registry import DATASETS, METRICS, MODELS


@DATASETS.register_module()
class ToyToolsDataset(torch.utils.data.Dataset):
    def __len__(self):
        return 8

    def __getitem__(self, idx):
        inputs = torch.tensor([idx / 8.0, 1.0])
        return dict(inputs=inputs, targets=inputs.sum(0, keepdim=True))


@MODELS.register_module()
class ToyToolsRegressor(BaseModel):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(2, 1)

    def forward(self, inputs, targets, mode='tensor'):
        out = self.linear(inputs)
        if mode == 'loss':
            is_bf16 = float(out.dtype == torch.bfloat16)
            return dict(loss_mse=F.mse_loss(out.float(), targets),
                        bf16=torch.tensor(is_bf16))
        return [dict(pred=o.float(), target=t) for o, t in zip(out, targets)]


@METRICS.register_module()
class ToyToolsMetric(BaseMetric):
    default_prefix = 'toy'

    def process(self, data_batch, data_samples):
        self.results.extend(
            float((s['pred'] - s['target']).pow(2).sum())
            for s in data_samples)

    def compute_metrics(self, results):
        return dict(mse=sum(results) / len(results))
'''

TOY_CONFIG = '''
custom_imports = dict(imports=['panseg_plugin', 'toy_tools_modules'],
                      allow_failed_imports=False)
default_scope = 'mmdet'
model = dict(type='ToyToolsRegressor')
_loader = dict(batch_size=2, num_workers=0,
               dataset=dict(type='ToyToolsDataset'),
               collate_fn=dict(type='default_collate'))
train_dataloader = dict(**_loader,
                        sampler=dict(type='InfiniteSampler', shuffle=False))
test_dataloader = dict(**_loader,
                       sampler=dict(type='DefaultSampler', shuffle=False))
test_evaluator = dict(type='ToyToolsMetric')
train_cfg = dict(type='IterBasedTrainLoop', max_iters=2)
test_cfg = dict(type='TestLoop')
optim_wrapper = dict(type='OptimWrapper',
                     optimizer=dict(type='SGD', lr=0.01))
auto_scale_lr = dict(enable=False, base_batch_size=2)
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=1),
    checkpoint=dict(type='CheckpointHook', interval=2, by_epoch=False))
log_processor = dict(by_epoch=False)
'''


def logged_scalars(work_dir):
    """Every line of every run's vis_data/scalars.json, by iteration."""
    rows = []
    for path in glob.glob(osp.join(work_dir, '*', 'vis_data',
                                   'scalars.json')):
        with open(path) as f:
            rows += [json.loads(line) for line in f if line.strip()]
    return sorted(rows, key=lambda row: row['iter'])


@pytest.mark.skipif(torch.cuda.is_available(),
                    reason='checks the CPU bfloat16 path of --amp')
def test_tools_train_amp_resume_and_test_on_cpu(tmp_path):
    (tmp_path / 'toy_tools_modules.py').write_text(TOY_MODULES)
    (tmp_path / 'toy_config.py').write_text(TOY_CONFIG)
    train = osp.join(REPO_ROOT, 'tools', 'train.py')
    work_dir = tmp_path / 'work'

    proc = run_tool([train, 'toy_config.py', '--work-dir', work_dir,
                     '--amp', '--auto-scale-lr'], env_path=tmp_path)
    assert proc.returncode == 0, proc.stdout
    proc = run_tool([train, 'toy_config.py', '--work-dir', work_dir,
                     '--amp', '--resume', '--cfg-options',
                     'train_cfg.max_iters=4'], env_path=tmp_path)
    assert proc.returncode == 0, proc.stdout

    rows = logged_scalars(work_dir)
    assert [row['iter'] for row in rows] == [1, 2, 3, 4]
    assert all(row['bf16'] == 1.0 for row in rows)  # autocast was on
    assert all(math.isfinite(row['loss']) for row in rows)

    out = tmp_path / 'preds.pkl'
    proc = run_tool([osp.join(REPO_ROOT, 'tools', 'test.py'),
                     'toy_config.py', work_dir / 'iter_4.pth',
                     '--work-dir', tmp_path / 'test', '--out', out],
                    env_path=tmp_path)
    assert proc.returncode == 0, proc.stdout
    assert 'toy/mse' in proc.stdout
    with open(out, 'rb') as f:
        assert len(pickle.load(f)) == 8

"""Tests of the import-time version check and of the train/test tools
(checkpoint loading: test_checkpoint_safety.py)."""
import glob
import json
import math
import os
import os.path as osp
import pickle
import subprocess
import sys

import mmcv
import pytest
import torch

import panseg_plugin  # noqa: F401
from panseg_plugin.utils.env_check import check_versions

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


# --------------------------------------------------------------- versions
def test_check_versions_accepts_this_environment():
    check_versions()


MIM = 'pip install -U openmim && mim install "mmcv>=2.0.0,<2.2.0"'
VERSION_CASES = [
    ('mmcv', '1.7.2', '>=2.0.0,<2.2.0', MIM),
    ('mmcv', '2.2.0', '>=2.0.0,<2.2.0', MIM),
    ('mmdet', '3.1.0', '>=3.2.0,<3.4.0', 'pip install "mmdet>=3.2.0,<3.4.0"'),
    ('mmdet', '3.4.0', '>=3.2.0,<3.4.0', 'pip install "mmdet>=3.2.0,<3.4.0"'),
    ('mmengine', '0.10.2', '>=0.10.3,<1.0.0',
     'pip install "mmengine>=0.10.3,<1.0.0"'),
    ('mmengine', '1.0.0', '>=0.10.3,<1.0.0',
     'pip install "mmengine>=0.10.3,<1.0.0"'),
    ('torch', '1.13.1', '>=2.0.0', 'https://pytorch.org/get-started/locally/'),
]


@pytest.mark.parametrize('name, version, wanted, command', VERSION_CASES)
def test_check_versions_names_the_command(monkeypatch, name, version,
                                          wanted, command):
    monkeypatch.setattr(sys.modules[name], '__version__', version)
    with pytest.raises(ImportError) as info:
        check_versions()
    message = str(info.value)
    assert f'{name}=={version} is installed but {name}{wanted} is ' \
        'required' in message
    assert command in message
    assert len(message.splitlines()) == 2  # only this package is named


@pytest.mark.parametrize('version', ['2.0.0', '2.1.0', '2.1.9'])
def test_check_versions_accepts_the_supported_mmcv(monkeypatch, version):
    monkeypatch.setattr(mmcv, '__version__', version)
    check_versions()


def test_check_versions_names_setuptools_without_pkg_resources(
        monkeypatch):
    # A None entry in sys.modules makes the module count as missing.
    monkeypatch.setitem(sys.modules, 'pkg_resources', None)
    with pytest.raises(ImportError,
                       match=r'pkg_resources is missing .* pip install '
                       r'"setuptools<82"'):
        check_versions()


def test_import_names_the_command_for_a_too_new_mmdet():
    """The import itself fails (a fresh interpreter, mmdet's version set
    before the plugin is imported)."""
    code = ('import mmdet; mmdet.__version__ = "3.4.0"; '
            'import panseg_plugin')
    proc = subprocess.run([sys.executable, '-c', code], cwd=REPO_ROOT,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, timeout=120)
    assert proc.returncode == 1, proc.stdout
    assert 'ImportError: panseg_plugin cannot run with this environment' \
        in proc.stdout
    assert 'mmdet==3.4.0 is installed but mmdet>=3.2.0,<3.4.0 is required:' \
        ' pip install "mmdet>=3.2.0,<3.4.0"' in proc.stdout


def test_check_versions_rejects_mmcv_without_ops(monkeypatch):
    # A None entry in sys.modules makes `import mmcv._ext` raise.
    monkeypatch.setitem(sys.modules, 'mmcv._ext', None)
    with pytest.raises(ImportError, match='mmcv._ext is missing'):
        check_versions()


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

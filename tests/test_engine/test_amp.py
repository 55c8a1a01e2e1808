"""``tools/train.py --amp`` on the CPU: bfloat16 autocast through
:class:`PanopticSegFormerCpuAmpOptimWrapper`."""
import math
import subprocess
import sys

import pytest
import torch
from mmengine.hooks import Hook
from toy_training import (load_tool, make_tiny_toy, single_thread, train,
                          toy_train_cfg, weights)

from panseg_plugin.engine.optim_wrapper import \
    PanopticSegFormerCpuAmpOptimWrapper

WRAPPER = 'PanopticSegFormerCpuAmpOptimWrapper'


class RecordLosses(Hook):
    """Every logged loss of every iteration, the dtype of the class logits
    in the forward pass of training and the initial class weights."""

    def __init__(self):
        self.losses, self.logit_dtypes = [], []
        self.initial_cls_weight = None

    def before_train(self, runner):
        cls_branch = runner.model.bbox_head.cls_branch
        self.initial_cls_weight = cls_branch.weight.detach().clone()
        cls_branch.register_forward_hook(
            lambda module, args, out: self.logit_dtypes.append(out.dtype)
            if module.training else None)

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        self.losses.append({k: float(v) for k, v in outputs.items()
                            if 'loss' in k})


@pytest.fixture(scope='module')
def toy(tmp_path_factory):
    return make_tiny_toy(tmp_path_factory.mktemp('toy_amp'))


@pytest.mark.skipif(torch.cuda.is_available(),
                    reason='--amp picks the CPU wrapper only without a GPU')
def test_amp_trains_with_bf16_forward_and_finite_losses(toy, tmp_path):
    train_tool = load_tool('train')
    cfg = toy_train_cfg(toy['data_root'], max_iters=3, checkpoint_interval=3)
    record = RecordLosses()
    with single_thread():
        runner = train(train_tool, cfg, tmp_path, 'amp', '--amp',
                       hooks=[record])

    assert type(runner.optim_wrapper) is PanopticSegFormerCpuAmpOptimWrapper
    assert runner.cfg.optim_wrapper.type == WRAPPER
    # The forward pass ran under bfloat16 autocast, the weights stayed fp32.
    assert record.logit_dtypes
    assert set(record.logit_dtypes) == {torch.bfloat16}
    assert len(record.losses) == 3
    for losses in record.losses:
        assert {'loss_cls', 'loss_mask', 'loss_loc'} <= set(losses)
        assert all(math.isfinite(v) for v in losses.values()), losses
    after = weights(runner)
    assert all(v.dtype != torch.bfloat16 for v in after.values())
    assert all(torch.isfinite(v).all() for v in after.values()
               if v.is_floating_point())
    assert not torch.equal(record.initial_cls_weight,
                           after['bbox_head.cls_branch.weight'])


def test_cpu_wrapper_refuses_float16():
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1)
    with pytest.raises(ValueError, match='bfloat16'):
        PanopticSegFormerCpuAmpOptimWrapper(
            optimizer=optimizer, dtype='float16')
    wrapper = PanopticSegFormerCpuAmpOptimWrapper(
        optimizer=optimizer, dtype='bfloat16')
    with wrapper.optim_context(torch.nn.Linear(1, 1)):
        assert torch.get_autocast_dtype('cpu') == torch.bfloat16
        assert torch.is_autocast_enabled('cpu')


def test_wrapper_is_registered_by_importing_the_package():
    """A config dumped by an --amp run names the wrapper; importing the
    package (what ``custom_imports`` does) must be enough to build it."""
    code = (
        'import panseg_plugin\n'
        'from mmengine.registry import OPTIM_WRAPPERS, DefaultScope\n'
        'for scope in (None, "mmdet"):\n'
        '    if scope:\n'
        '        DefaultScope.get_instance("t", scope_name=scope)\n'
        f'    assert OPTIM_WRAPPERS.get("{WRAPPER}") is not None, scope\n')
    proc = subprocess.run([sys.executable, '-c', code],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, (
        'panseg_plugin/__init__.py must import panseg_plugin.engine:\n' +
        proc.stderr[-2000:])

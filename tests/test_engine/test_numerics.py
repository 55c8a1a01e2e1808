"""Non-finite predictions reaching the Hungarian matcher end to end: the
error names the cost term instead of scipy's "matrix contains invalid
numeric entries"."""
import math

import pytest
import torch
from mmdet.registry import MODELS
from mmengine.optim import OptimWrapper
from toy_training import single_thread

from panseg_plugin.testing import (demo_panoptic_batch,
                                   tiny_panoptic_segformer_cfg)


@pytest.fixture
def model_and_batch():
    torch.manual_seed(0)
    model = MODELS.build(tiny_panoptic_segformer_cfg())
    model.init_weights()
    model.train()
    data = model.data_preprocessor(demo_panoptic_batch(), True)
    with single_thread():
        yield model, data


def test_finite_model_gives_finite_losses(model_and_batch):
    model, data = model_and_batch
    losses = model.loss(data['inputs'], data['data_samples'])
    assert all(math.isfinite(float(v)) for v in losses.values())


def test_nan_class_logits_name_the_focal_cost(model_and_batch):
    model, data = model_and_batch
    model.bbox_head.cls_branch.register_forward_hook(
        lambda module, args, out: torch.full_like(out, float('nan')))
    with pytest.raises(ValueError) as info:
        model.loss(data['inputs'], data['data_samples'])
    message = str(info.value)
    assert 'FocalLossCost' in message
    assert 'non-finite' in message
    assert 'demo_0.jpg' in message  # the image whose matching failed


def test_nan_mask_logits_name_the_dice_cost(model_and_batch):
    model, data = model_and_batch
    with torch.no_grad():
        model.bbox_head.mask_branch.bias.fill_(float('nan'))
    with pytest.raises(ValueError, match='DiceCost'):
        model.loss(data['inputs'], data['data_samples'])


def test_diverged_weights_fail_in_train_step_naming_a_cost(model_and_batch):
    """A NaN weight deep in the backbone makes every output NaN; the first
    cost term of the matcher reports it through ``train_step`` too."""
    model, _ = model_and_batch
    with torch.no_grad():
        model.backbone.conv1.weight[0, 0, 0, 0] = float('nan')
    optim_wrapper = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1))
    with pytest.raises(ValueError, match='FocalLossCost'):
        model.train_step(demo_panoptic_batch(), optim_wrapper)

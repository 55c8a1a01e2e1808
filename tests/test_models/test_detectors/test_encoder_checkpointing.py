"""mmdet's encoder activation checkpointing (``encoder.num_cp``, fairscale)
in Panoptic SegFormer: the same losses, gradients and state-dict keys as
without it, encoder dropout included."""
import importlib.util

import pytest
import torch
from mmdet.registry import MODELS

from panseg_plugin.testing import (demo_panoptic_batch,
                                   tiny_panoptic_segformer_cfg)

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec('fairscale') is None,
    reason='encoder checkpointing needs fairscale: pip install -r '
    'requirements/optional.txt')


def _model(num_cp):
    cfg = tiny_panoptic_segformer_cfg(num_levels=4)
    cfg['encoder']['num_layers'] = 2
    cfg['encoder']['num_cp'] = num_cp
    cfg['encoder']['layer_cfg']['ffn_cfg']['ffn_drop'] = 0.5
    torch.manual_seed(0)
    model = MODELS.build(cfg)
    model.init_weights()
    return model.train()


def _losses_and_grads(model):
    data = model.data_preprocessor(
        demo_panoptic_batch(image_shapes=((60, 68), (50, 70))), True)
    torch.manual_seed(1)  # the same dropout masks in both models
    losses = model(**data, mode='loss')
    sum(losses.values()).backward()
    grads = {name: param.grad.clone()
             for name, param in model.named_parameters()
             if param.grad is not None}
    return losses, grads


def test_checkpointed_encoder_gives_the_same_losses_and_gradients():
    plain, checkpointed = _model(-1), _model(2)
    # fairscale wraps the layers' forward in place
    assert all('_checkpointed_forward' in repr(layer.forward)
               for layer in checkpointed.encoder.layers)
    assert not any('_checkpointed_forward' in repr(layer.forward)
                   for layer in plain.encoder.layers)
    assert plain.state_dict().keys() == checkpointed.state_dict().keys()
    checkpointed.load_state_dict(plain.state_dict())
    want_losses, want_grads = _losses_and_grads(plain)
    got_losses, got_grads = _losses_and_grads(checkpointed)
    assert got_losses.keys() == want_losses.keys()
    for key in want_losses:
        torch.testing.assert_close(got_losses[key], want_losses[key])
    assert got_grads.keys() == want_grads.keys()
    encoder_grads = [name for name in want_grads if name.startswith('encoder')]
    assert encoder_grads
    for name in want_grads:
        torch.testing.assert_close(got_grads[name], want_grads[name],
                                   rtol=1e-5, atol=1e-6, msg=name)


def test_encoder_dropout_changes_gradients():
    # the equality above is not vacuous: another seed changes the encoder
    # gradients, so the recomputation must have drawn the same masks
    model = _model(2)
    _, first = _losses_and_grads(model)
    model.zero_grad()
    data = model.data_preprocessor(
        demo_panoptic_batch(image_shapes=((60, 68), (50, 70))), True)
    torch.manual_seed(2)
    sum(model(**data, mode='loss').values()).backward()
    name = next(n for n in first if n.startswith('encoder'))
    assert not torch.allclose(
        dict(model.named_parameters())[name].grad, first[name])


def test_cpu_mixed_precision_with_a_checkpointed_encoder_is_refused():
    # fairscale's recomputation runs without CPU autocast: refused with the
    # fix named, before a backward pass that would fail on mixed dtypes
    model = _model(2)
    data = model.data_preprocessor(
        demo_panoptic_batch(image_shapes=((60, 68), )), True)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        with pytest.raises(RuntimeError, match='num_cp=-1'):
            model(**data, mode='loss')
        model.eval()
        with torch.no_grad():  # inference recomputes nothing: allowed
            model(**data, mode='tensor')

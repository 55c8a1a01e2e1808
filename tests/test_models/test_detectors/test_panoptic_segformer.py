import pytest
import torch

import panseg_plugin  # noqa: F401
from mmdet.registry import MODELS
from mmdet.evaluation.functional import INSTANCE_OFFSET
from panseg_plugin.models.dense_heads import PanopticSegFormerHeadOutputs
from panseg_plugin.testing import (demo_panoptic_batch,
                                   tiny_panoptic_segformer_cfg)


def _build(**kwargs):
    torch.manual_seed(0)
    model = MODELS.build(tiny_panoptic_segformer_cfg(**kwargs))
    model.init_weights()
    return model


def _loss(model, **batch_kwargs):
    model.train()
    data = model.data_preprocessor(demo_panoptic_batch(**batch_kwargs), True)
    return model(**data, mode='loss')


EXPECTED_KEYS = {'loss_cls', 'loss_mask', 'loss_loc',
                 'd0.loss_cls', 'd0.loss_mask'}


def test_loss_keys_finite_and_gradients_reach_every_parameter():
    model = _build()
    losses = _loss(model)
    assert set(losses) == EXPECTED_KEYS
    assert all(torch.isfinite(v) for v in losses.values())
    assert all(v.item() > 0 for v in losses.values())
    sum(losses.values()).backward()
    missing = [n for n, p in model.named_parameters()
               if p.requires_grad and (p.grad is None)]
    assert missing == []


def test_loss_without_deep_supervision_has_no_layer_prefixes():
    losses = _loss(_build(deep_supervision=False))
    assert set(losses) == {'loss_cls', 'loss_mask', 'loss_loc'}


@pytest.mark.parametrize('num_things, stuff', [
    ((0, 0), ((), ())),          # nothing at all
    ((0, 0), ((3, 4), (4, ))),   # stuff only
    ((2, 3), ((), ())),          # things only
])
def test_degenerate_ground_truth(num_things, stuff):
    model = _build()
    losses = _loss(model, num_things=num_things, stuff_labels=stuff)
    assert set(losses) == EXPECTED_KEYS
    assert all(torch.isfinite(v) for v in losses.values())
    total = sum(losses.values())
    total.backward()  # still connected to the graph
    if sum(num_things) == 0 and not any(stuff):
        assert losses['loss_mask'].item() == 0.0
        assert losses['loss_loc'].item() == 0.0
        assert losses['loss_cls'].item() > 0.0


def test_more_ground_truth_than_queries():
    model = _build(num_queries=3)
    losses = _loss(model, num_things=(6, 5))
    assert all(torch.isfinite(v) for v in losses.values())


@pytest.mark.parametrize('num_levels', [1, 2, 3, 4, 5])
def test_any_number_of_levels(num_levels):
    model = _build(num_levels=num_levels)
    assert set(_loss(model)) == EXPECTED_KEYS
    model.eval()
    data = model.data_preprocessor(demo_panoptic_batch(), False)
    with torch.no_grad():
        out = model(**data, mode='tensor')
    assert out.mask_preds.shape[-2:] == (
        data['inputs'].shape[-2] // 8, data['inputs'].shape[-1] // 8)


def test_tensor_mode_named_outputs():
    model = _build().eval()
    data = model.data_preprocessor(demo_panoptic_batch(), False)
    with torch.no_grad():
        out = model(**data, mode='tensor')
    assert isinstance(out, PanopticSegFormerHeadOutputs)
    pad_h, pad_w = data['inputs'].shape[-2:]
    assert out.cls_scores.shape == (1, 2, 10, 5)
    assert out.mask_preds.shape == (1, 2, 10, pad_h // 8, pad_w // 8)
    assert out.loc_preds.shape == (2, 10, 3)
    assert out.attn_maps is None  # the logits are not kept by default
    assert ((out.loc_preds >= 0) & (out.loc_preds <= 1)).all()
    model.bbox_head.explicit_attention = True
    with torch.no_grad():
        explicit = model(**data, mode='tensor')
    num_tokens = int(explicit.mask_shapes.prod(1).sum())
    assert explicit.attn_maps.shape == (2, 10, 2, num_tokens)
    torch.testing.assert_close(explicit.mask_preds, out.mask_preds,
                               rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(explicit.cls_scores, out.cls_scores,
                               rtol=1e-4, atol=1e-4)


def test_predict_outputs_follow_mmdet_conventions():
    model = _build().eval()
    model.panoptic_fusion_head.score_thr = 0.0   # keep every query
    data = model.data_preprocessor(demo_panoptic_batch(), False)
    with torch.no_grad():
        results = model(**data, mode='predict')
    for sample in results:
        pan = sample.pred_panoptic_seg.sem_seg
        assert pan.shape == (1, *sample.ori_shape)
        labels = pan % INSTANCE_OFFSET
        assert labels.max() <= 5 and labels.min() >= 0
        ins = sample.pred_instances
        assert ins.masks.shape[1:] == sample.ori_shape
        assert (ins.labels < 3).all()


def test_batch_equals_single_image():
    model = _build().eval()
    batch = demo_panoptic_batch(image_shapes=((64, 64), (64, 64)))
    single = demo_panoptic_batch(image_shapes=((64, 64), ), num_things=(2, ),
                                 stuff_labels=((3, 4), ))
    with torch.no_grad():
        out_b = model(**model.data_preprocessor(batch, False), mode='tensor')
        out_s = model(**model.data_preprocessor(single, False), mode='tensor')
    torch.testing.assert_close(out_b.mask_preds[:, :1], out_s.mask_preds,
                               rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(out_b.cls_scores[:, :1], out_s.cls_scores,
                               rtol=1e-4, atol=1e-4)


def test_inconsistent_config_is_refused():
    cfg = tiny_panoptic_segformer_cfg()
    cfg['panoptic_fusion_head']['num_stuff_classes'] = 7
    with pytest.raises(ValueError, match='stuff classes'):
        MODELS.build(cfg)
    cfg = tiny_panoptic_segformer_cfg()
    cfg['bbox_head']['num_mask_levels'] = 4
    with pytest.raises(ValueError, match='num_mask_levels'):
        MODELS.build(cfg)

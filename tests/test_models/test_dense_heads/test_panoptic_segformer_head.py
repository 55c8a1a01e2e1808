"""PanopticSegFormerHead: location loss, padding-free matching and mask
loss, the deep-supervision balance and the refused settings."""
import pytest
import torch
from mmengine.structures import InstanceData

import panseg_plugin  # noqa: F401
from mmdet.registry import MODELS
from panseg_plugin.models.utils import valid_cells


def _head(**kwargs):
    torch.manual_seed(0)
    cfg = dict(
        type='PanopticSegFormerHead', num_things_classes=3,
        num_stuff_classes=2, embed_dims=32, num_mask_levels=2,
        mask_decoder=dict(num_layers=2, num_heads=2,
                          feedforward_channels=64, dropout=0.0))
    cfg.update(kwargs)
    return MODELS.build(cfg)


def _target(num, size, up, seed):
    """``num`` random binary segments on a (size) grid and at up x."""
    g = torch.Generator().manual_seed(seed)
    h, w = size
    small = (torch.rand(num, h, w, generator=g) > 0.6).float()
    big = small.repeat_interleave(up, 1).repeat_interleave(up, 2)
    return InstanceData(labels=torch.randint(0, 5, (num, ), generator=g),
                        masks=small, loss_masks=big,
                        locations=torch.rand(num, 3, generator=g))


def test_location_loss_is_eq4_l1_over_matched_pairs():
    head = _head()
    loc = torch.tensor([[[0.5, 0.5, 0.1], [0.2, 0.4, 0.3], [0., 0., 0.]]],
                       requires_grad=True)
    target = InstanceData(locations=torch.tensor([[0.4, 0.5, 0.2],
                                                  [0.2, 0.1, 0.3]]))
    # query 0 -> gt 0, query 1 -> gt 1: (0.1 + 0 + 0.1) + (0 + 0.3 + 0)
    loss = head._loss_location(
        loc, [target], [(torch.tensor([0, 1]), torch.tensor([0, 1]))])
    torch.testing.assert_close(loss, torch.tensor(5.0 * 0.5 / 2))
    empty = head._loss_location(
        loc, [target], [(torch.tensor([], dtype=torch.long),
                         torch.tensor([], dtype=torch.long))])
    assert empty.item() == 0.0
    empty.backward()
    assert (loc.grad == 0).all()


def test_valid_cells_rounds_up_partly_covered_cells():
    assert valid_cells((60, 68), (64, 96), (8, 12)) == (8, 9)
    assert valid_cells((64, 96), (64, 96), (8, 12)) == (8, 12)
    assert valid_cells((1, 1), (64, 96), (8, 12)) == (1, 1)


def test_padding_takes_no_part_in_matching_or_mask_loss():
    """An image matched alone and inside a batch padded to a larger size,
    with arbitrary logits in the padding, gets the same assignment and the
    same class and mask losses."""
    head = _head()
    up = head.mask_loss_upsample
    num_queries, (h, w) = 6, (5, 7)
    g = torch.Generator().manual_seed(1)
    cls = torch.randn(1, num_queries, 5, generator=g)
    masks = torch.randn(1, num_queries, h, w, generator=g)
    target = _target(3, (h, w), up, seed=2)
    alone_meta = dict(img_shape=(40, 56), batch_input_shape=(40, 56))
    alone = head._loss_by_feat_single(cls, masks, [target], [alone_meta])

    # the same image in a batch padded to 64 x 96 (grid 8 x 12), next to a
    # second image that fills it
    big = torch.randn(2, num_queries, 8, 12, generator=g) * 10
    big[0, :, :h, :w] = masks[0]
    padded = InstanceData(
        labels=target.labels,
        masks=torch.zeros(3, 8, 12),
        loss_masks=torch.zeros(3, 8 * up, 12 * up),
        locations=target.locations)
    padded.masks[:, :h, :w] = target.masks
    padded.loss_masks[:, :h * up, :w * up] = target.loss_masks
    other = _target(2, (8, 12), up, seed=3)
    metas = [dict(img_shape=(40, 56), batch_input_shape=(64, 96)),
             dict(img_shape=(64, 96), batch_input_shape=(64, 96))]
    cls2 = torch.cat([cls, torch.randn(1, num_queries, 5, generator=g)])
    batched = head._loss_by_feat_single(cls2, big, [padded, other], metas)
    for (q1, g1), (q2, g2) in [(alone[2][0], batched[2][0])]:
        assert torch.equal(q1, q2) and torch.equal(g1, g2)

    # the same image alone in a padded batch of one: identical losses
    single = head._loss_by_feat_single(cls, big[:1], [padded], metas[:1])
    torch.testing.assert_close(single[0], alone[0])
    torch.testing.assert_close(single[1], alone[1])


def test_deep_supervision_reduction_mean_averages_the_layers():
    cls = torch.randn(2, 1, 4, 5)
    masks = torch.randn(2, 1, 4, 5, 6)
    loc = torch.rand(1, 4, 3)
    target = _target(2, (5, 6), 2, seed=0)
    meta = dict(img_shape=(40, 48), batch_input_shape=(40, 48))
    summed = _head().loss_by_feat(cls, masks, loc, [target], [meta])
    mean = _head(deep_supervision_reduction='mean').loss_by_feat(
        cls, masks, loc, [target], [meta])
    assert set(summed) == set(mean) == {
        'loss_cls', 'loss_mask', 'd0.loss_cls', 'd0.loss_mask', 'loss_loc'}
    for key in summed:
        factor = 1.0 if key == 'loss_loc' else 0.5
        torch.testing.assert_close(mean[key], summed[key] * factor)


def test_mask2former_test_cfg_is_refused_naming_the_fusion_head_argument():
    with pytest.raises(ValueError, match=r'object_mask_thr -> model\.'
                       r'panoptic_fusion_head\.score_thr'):
        _head(test_cfg=dict(object_mask_thr=0.8, iou_thr=0.8))
    _head(test_cfg=dict())  # empty is fine


@pytest.mark.parametrize('kwargs', [
    dict(as_two_stage=True), dict(share_pred_layer=False),
    dict(deep_supervision_reduction='max'), dict(mask_loss_upsample=1.5)
])
def test_unsupported_settings_are_refused(kwargs):
    with pytest.raises(ValueError):
        _head(**kwargs)


@pytest.mark.parametrize('num_heads,num_levels', [(2, 2), (4, 3), (1, 1)])
def test_fused_masks_equal_explicit_attention_path(num_heads, num_levels):
    """The head without the logits (fused attention, masks from queries
    and keys) gives the explicit path's classes, masks and gradients, in
    training (every deep-supervised layer) with a padding mask."""
    torch.manual_seed(0)
    head = _head(num_mask_levels=num_levels,
                 mask_decoder=dict(num_layers=2, num_heads=num_heads,
                                   feedforward_channels=64, dropout=0.0))
    head.init_weights()
    head.train()
    shapes = torch.tensor([(8, 12), (4, 6), (2, 3)][:num_levels] +
                          [(1, 2)])
    num_tokens = int(shapes.prod(1).sum())
    mask = torch.zeros(2, num_tokens, dtype=torch.bool)
    mask[1, 40:96] = True  # padding tokens of the second image
    inputs = dict(hidden_states=torch.randn(2, 2, 7, 32),
                  references=[torch.rand(2, 7, 2)],
                  query_pos=torch.randn(2, 7, 32),
                  memory=torch.randn(2, num_tokens, 32, requires_grad=True),
                  memory_mask=mask,
                  memory_pos=torch.randn(2, num_tokens, 32),
                  spatial_shapes=shapes)
    outs = {}
    for explicit in (True, False):
        head.explicit_attention = explicit
        out = head(**inputs)
        loss = out.mask_preds.square().mean() + out.cls_scores.mean() + \
            out.loc_preds.mean()
        grads = torch.autograd.grad(
            loss, [inputs['memory']] + list(head.parameters()))
        outs[explicit] = out, grads
    (ref, ref_grads), (fused, grads) = outs[True], outs[False]
    assert ref.attn_maps.shape == (2, 7, num_heads, int(
        shapes[:num_levels].prod(1).sum()))
    assert fused.attn_maps is None
    assert fused.mask_preds.shape == (2, 2, 7, 8, 12)
    torch.testing.assert_close(fused.mask_preds, ref.mask_preds,
                               rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(fused.cls_scores, ref.cls_scores,
                               rtol=1e-4, atol=1e-5)
    for g, r in zip(grads, ref_grads):
        torch.testing.assert_close(g, r, rtol=1e-3, atol=1e-5)

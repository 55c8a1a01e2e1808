"""Training losses of the released architecture against the authors' code
(``loss_case.pt``: one training forward, 2 things and 2 stuff, dropout
off): every non-zero term and every matching."""
import pytest
import torch
from mmdet.structures import DetDataSample
from mmdet.structures.bbox import bbox_cxcywh_to_xyxy
from mmengine.structures import InstanceData

from panseg_plugin.models.utils.panoptic_segformer_cvpr22_checkpoint import \
    convert_official_state_dict

from official_r50 import (load_fixture, needs_fixtures, official_keys,
                          official_state_dict)
from test_forward_parity import build_r50

pytestmark = needs_fixtures


@pytest.fixture(scope='module')
def case():
    return load_fixture('loss_case.pt')


@pytest.fixture(scope='module')
def model(case):
    model = build_r50()
    state = official_state_dict(official_keys(), overrides=case['overrides'])
    model.load_state_dict(convert_official_state_dict(state), strict=True)
    return model.eval()  # the fixture ran with every dropout off


def sample(case):
    data = DetDataSample(
        metainfo=dict(img_shape=(128, 192), ori_shape=(128, 192),
                      batch_input_shape=(128, 192), pad_shape=(128, 192),
                      scale_factor=(1.0, 1.0)))
    data.gt_instances = InstanceData(labels=case['gt_labels'],
                                     bboxes=case['gt_bboxes'],
                                     masks=case['gt_masks'])
    return data


def test_loss_terms_match_official(model, case):
    losses = model.loss(case['image'], [sample(case)])
    ours = {k: v.item() for k, v in losses.items()}
    theirs = {k: case['losses'][k].item() for k in case['loss_names']}
    # the 12 per-block thing box/class terms are multiplied by 0 in the
    # authors' code; their branches are not in the model
    zero = {k for k in theirs if k.endswith(('_iou_f', '_bbox_f', '_cls_f'))}
    assert all(theirs[k] == 0.0 for k in zero) and len(zero) == 12
    assert set(ours) == set(theirs) - zero
    rows = []
    for name, value in ours.items():
        rel = abs(value - theirs[name]) / max(abs(theirs[name]), 1e-12)
        rows.append((name, theirs[name], value, rel))
        assert rel <= 1e-4 or abs(value - theirs[name]) <= 1e-6, name
    print('\n'.join(f'{n:26s} {t:12.7g} {o:12.7g} {r:.1e}'
                    for n, t, o, r in rows))
    # gradients reach every trainable parameter
    sum(losses.values()).backward()
    missing = [n for n, p in model.named_parameters()
               if p.requires_grad and p.grad is None]
    assert not missing
    model.zero_grad()


def test_matchings_match_official(model, case):
    data = sample(case)
    head = model.bbox_head
    with torch.no_grad():
        head_in = model.forward_transformer(model.extract_feat(case['image']),
                                            [data])
        all_cls, all_boxes = head(head_in['hidden_states'],
                                  head_in['references'])
        things, _ = head.split_panoptic_gt([data])
        meta = data.metainfo
        expected = case['assignments']
        factor = all_boxes.new_tensor([192, 128, 192, 128])
        for layer in range(5):
            pred = InstanceData(
                scores=all_cls[layer, 0],
                bboxes=bbox_cxcywh_to_xyxy(all_boxes[layer, 0]) * factor)
            assigned = head.assigner.assign(pred, things[0], meta).gt_inds
            assert torch.equal(assigned, expected[layer]['assigned_gt_inds'])
        kept = head.filter_queries(all_cls[-1, 0], all_boxes[-1, 0],
                                   things[0], meta)
        assert torch.equal(kept, expected[5]['pos_inds_all_rounds'])
        memory, shapes = head.mask_memory(head_in['memory'],
                                          head_in['spatial_shapes'])
        tails = head.forward_things(head_in['hidden_states'][-1][:, kept],
                                    memory, shapes).tail_mask[0]
        _, _, assigned = head._thing_mask_targets(
            all_cls[-1, 0, kept], all_boxes[-1, 0, kept], tails, things[0],
            meta)
        assert torch.equal(assigned, expected[6]['assigned_gt_inds'])

        # the intended filter: 3 distinct queries per thing
        head.query_filter_rounds = 3
        try:
            kept3 = head.filter_queries(all_cls[-1, 0], all_boxes[-1, 0],
                                        things[0], meta)
        finally:
            head.query_filter_rounds = 1
        assert len(kept3) == 6 and len(set(kept3.tolist())) == 6
        assert set(kept.tolist()) <= set(kept3.tolist())

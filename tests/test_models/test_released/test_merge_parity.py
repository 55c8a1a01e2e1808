"""Post-processing of the released models against the authors' code on
crafted masks (``merge_cases.pt``): every output exact, ties included."""
import json

import numpy as np
import pytest
import torch
from mmengine.structures import InstanceData

from panseg_plugin.models.seg_heads import PanopticSegFormerCVPR22FusionHead
from panseg_plugin.models.utils import cvpr22_mask_scores

from official_r50 import (data_sample, fixture_path, load_fixture,
                          needs_fixtures, official_panoptic)

CASES = ['seed0', 'seed1', 'seed2', 'seed3', 'edge']


@pytest.fixture(scope='module')
def cases():
    return {c['name']: c for c in load_fixture('merge_cases.pt')['cases']}


@needs_fixtures
@pytest.mark.parametrize('name', CASES)
def test_merge_case_is_exact(cases, name):
    case = cases[name]
    inputs, expected, thr = case['inputs'], case['outputs'], \
        case['thresholds']
    head = PanopticSegFormerCVPR22FusionHead(
        quality_thr_things=thr['quality_things'],
        quality_thr_stuff=thr['quality_stuff'],
        overlap_thr_things=thr['overlap_things'],
        overlap_thr_stuff=thr['overlap_stuff'])
    img_meta = data_sample(case['meta']).metainfo
    # the head's candidate selection: top-100 over (300 queries x 80)
    scores, index = inputs['cls_last'].sigmoid().view(-1).topk(100)
    queries, labels = index // 80, index % 80
    assert torch.equal(index, expected['topk_index'])
    assert torch.equal(scores, expected['topk_score'])
    boxes = inputs['boxes_last'][queries]
    assert torch.equal(
        head.rescale_boxes(boxes.clone(), img_meta, rescale=True),
        expected['det_bboxes'][:, :4])
    stuff_scores = inputs['stuff_logits'].sigmoid()
    masks = head.resize_masks(
        torch.cat([inputs['thing_masks'], inputs['stuff_masks']]), img_meta,
        rescale=True)
    merged, _ = cvpr22_mask_scores(masks, torch.cat([scores, stuff_scores]))
    assert torch.equal(merged, expected['merge_scores_unsorted'])
    merged_sorted, order = torch.sort(merged, descending=True)
    assert torch.equal(merged_sorted, expected['merge_scores_sorted'])
    assert torch.equal(order, expected['merge_order'])

    result = head.predict_single(scores, labels, boxes,
                                 inputs['thing_masks'], stuff_scores,
                                 inputs['stuff_masks'], img_meta, True)
    ids = json.loads(
        fixture_path('coco_panoptic_category_ids.json').read_text())
    panoptic = official_panoptic(result['pan_results'].sem_seg[0], ids)
    assert torch.equal(panoptic, expected['panoptic'])
    ins = result['ins_results']
    assert torch.equal(ins.bboxes, expected['inst_boxes'][:, :4])
    assert torch.equal(ins.scores, expected['inst_boxes'][:, 4])
    assert torch.equal(ins.labels, expected['inst_labels'])
    shape = expected['inst_masks_shape']
    inst_masks = np.unpackbits(
        expected['inst_masks_packed'].numpy(), axis=1,
        count=shape[1] * shape[2], bitorder='big').reshape(shape)
    assert np.array_equal(ins.masks.numpy(), inst_masks.astype(bool))


def test_padded_batch_input_is_cropped():
    """With padding the masks are cropped to img_shape before resizing."""
    head = PanopticSegFormerCVPR22FusionHead(num_things_classes=2,
                                             num_stuff_classes=1)
    masks = torch.zeros(3, 4, 6)
    masks[:, :, 4:] = 1.0  # only in the padding (columns 32..47)
    meta = dict(img_shape=(32, 30), batch_input_shape=(32, 48),
                ori_shape=(16, 15), scale_factor=(2.0, 2.0))
    out = head.resize_masks(masks, meta, rescale=True)
    assert out.shape == (3, 16, 15)
    assert out.max() < 0.5
    result = head.predict_single(
        torch.ones(2), torch.tensor([0, 1]), torch.full((2, 4), 0.5),
        masks[:2], torch.ones(1), masks[2:], meta, True)
    assert isinstance(result['ins_results'], InstanceData)
    # nothing inside the image: all void
    assert (result['pan_results'].sem_seg == 3).all()

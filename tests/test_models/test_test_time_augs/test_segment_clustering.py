"""Grouping and fusion of the candidates of several TTA views."""
import pytest
import torch

from panseg_plugin.models.test_time_augs import (cluster_view_segments,
                                                 fuse_clusters)


def box(y0, y1, x0, x1, value=0.9, size=(8, 8)):
    mask = torch.zeros(size)
    mask[y0:y1, x0:x1] = value
    return mask


def test_one_view_is_left_as_it_is():
    torch.manual_seed(0)
    masks = torch.rand(5, 8, 8)
    scores = torch.rand(5)
    labels = torch.tensor([0, 0, 1, 2, 0])
    ids = cluster_view_segments(masks, scores, labels,
                                torch.zeros(5, dtype=torch.long))
    assert ids.tolist() == [0, 1, 2, 3, 4]
    # bit for bit: the single-view path must equal the non-TTA path
    assert torch.equal(fuse_clusters(masks, ids), masks)
    assert torch.equal(fuse_clusters(scores, ids), scores)
    assert torch.equal(fuse_clusters(scores, ids, divisor=1), scores)


def test_same_segment_of_two_views_is_one_group_with_mean_mask():
    masks = torch.stack([box(0, 4, 0, 4, 0.8), box(4, 8, 4, 8),
                         box(0, 4, 0, 5, 0.6)])
    scores = torch.tensor([0.9, 0.5, 0.7])
    labels = torch.tensor([1, 1, 1])
    views = torch.tensor([0, 0, 1])
    ids = cluster_view_segments(masks, scores, labels, views, iou_thr=0.5)
    # IoU of the first and last boxes: 16 / 20 = 0.8
    assert ids.tolist() == [0, 1, 0]
    fused = fuse_clusters(masks, ids)
    assert fused.shape == (2, 8, 8)
    assert torch.allclose(fused[0], (masks[0] + masks[2]) / 2)
    assert torch.equal(fused[1], masks[1])
    assert torch.allclose(fuse_clusters(scores, ids),
                          torch.tensor([0.8, 0.5]))
    # a view that misses a segment votes 0 for it
    assert torch.allclose(fuse_clusters(scores, ids, divisor=2),
                          torch.tensor([0.8, 0.25]))


def test_no_grouping_across_classes_within_a_view_or_below_iou_thr():
    same = box(0, 4, 0, 4)
    masks = torch.stack([same, same, same, box(0, 4, 0, 8)])
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6])
    # 0 and 1: same view; 0 and 2: other class; 0 and 3: IoU 0.5, not > 0.5
    ids = cluster_view_segments(masks, scores, torch.tensor([0, 0, 1, 0]),
                                torch.tensor([0, 0, 1, 1]), iou_thr=0.5)
    assert ids.tolist() == [0, 1, 2, 3]
    # with a lower threshold the last one joins the leader of its class
    # that has no member of its view yet: the first (view 0)
    ids = cluster_view_segments(masks, scores, torch.tensor([0, 0, 1, 0]),
                                torch.tensor([0, 0, 1, 1]), iou_thr=0.4)
    assert ids.tolist() == [0, 1, 2, 0]


def test_best_overlap_wins_and_leaders_are_highest_scored():
    masks = torch.stack([box(0, 4, 0, 4), box(0, 4, 0, 6), box(0, 4, 0, 5)])
    scores = torch.tensor([0.5, 0.9, 0.4])
    labels = torch.zeros(3, dtype=torch.long)
    views = torch.tensor([0, 1, 2])
    # view 1's box (score 0.9) leads; view 0's box joins it (IoU 16/24);
    # view 2's box then finds that group at IoU 20/24 and joins too
    ids = cluster_view_segments(masks, scores, labels, views, iou_thr=0.5)
    assert ids.tolist() == [0, 0, 0]
    # numbered by the leader's position: two groups, leaders 0 and 1
    masks = torch.stack([box(0, 4, 0, 4), box(4, 8, 4, 8), box(4, 8, 4, 7)])
    ids = cluster_view_segments(masks, torch.tensor([0.3, 0.9, 0.5]),
                                labels, torch.tensor([0, 0, 1]))
    assert ids.tolist() == [0, 1, 1]


def test_empty_and_bad_inputs():
    empty = cluster_view_segments(torch.zeros(0, 4, 4), torch.zeros(0),
                                  torch.zeros(0, dtype=torch.long),
                                  torch.zeros(0, dtype=torch.long))
    assert empty.shape == (0, ) and empty.dtype == torch.long
    assert fuse_clusters(torch.zeros(0, 4, 4), empty).shape == (0, 4, 4)
    with pytest.raises(ValueError, match='expected mask_probs'):
        cluster_view_segments(torch.zeros(2, 4, 4), torch.zeros(3),
                              torch.zeros(2, dtype=torch.long),
                              torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match='3 values for 2 group ids'):
        fuse_clusters(torch.zeros(3), torch.zeros(2, dtype=torch.long))

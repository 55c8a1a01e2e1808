"""Tests of mask-wise merging (Algorithm 1 of the paper)."""
import pytest
import torch
from mmdet.structures.mask import mask2bbox

from panseg_plugin.models.utils import mask_boxes, mask_wise_merge

OFFSET = 1000  # mmdet's INSTANCE_OFFSET
NUM_THINGS = 3
NUM_CLASSES = 5  # labels 3 and 4 are stuff
VOID = NUM_CLASSES


def _merge(masks, scores, labels, **kwargs):
    return mask_wise_merge(
        torch.as_tensor(masks, dtype=torch.float32),
        torch.as_tensor(scores, dtype=torch.float32),
        torch.as_tensor(labels, dtype=torch.long),
        num_things_classes=NUM_THINGS,
        num_classes=NUM_CLASSES,
        **kwargs)


def _rect(y0, y1, x0, x1, value=1.0, size=(4, 6)):
    mask = torch.zeros(size)
    mask[y0:y1, x0:x1] = value
    return mask


def test_output_shape_dtype_and_device():
    pan = _merge(torch.rand(3, 4, 6), [0.9, 0.5, 0.4], [0, 1, 3])
    assert pan.shape == (4, 6)
    assert pan.dtype == torch.long


def test_higher_score_wins_overlap():
    masks = torch.stack([_rect(0, 4, 0, 4), _rect(0, 4, 2, 6)])
    # The second query scores higher: it owns the overlap (columns 2-3).
    pan = _merge(masks, [0.5, 0.9], [0, 1])
    assert (pan[:, 2:6] == 1 + 1 * OFFSET).all()
    assert (pan[:, 0:2] == 0 + 2 * OFFSET).all()


def test_things_numbered_in_score_order_stuff_gets_label():
    masks = torch.stack([
        _rect(0, 2, 0, 3),  # thing 2, lowest thing score
        _rect(0, 2, 3, 6),  # stuff 4
        _rect(2, 4, 0, 3),  # thing 0, highest score
        _rect(2, 4, 3, 6),  # thing 1
    ])
    pan = _merge(masks, [0.4, 0.95, 0.9, 0.6], [2, 4, 0, 1])
    assert (pan[2:, :3] == 0 + 1 * OFFSET).all()
    assert (pan[2:, 3:] == 1 + 2 * OFFSET).all()
    assert (pan[:2, :3] == 2 + 3 * OFFSET).all()
    assert (pan[:2, 3:] == 4).all()


def test_score_threshold():
    masks = torch.stack([_rect(0, 4, 0, 3), _rect(0, 4, 3, 6)])
    pan = _merge(masks, [0.29, 0.3], [0, 1], score_thr=0.3)
    # 0.29 is dropped; a score equal to the threshold is kept.
    assert (pan[:, :3] == VOID).all()
    assert (pan[:, 3:] == 1 + 1 * OFFSET).all()


def test_mask_threshold_is_strict():
    mask = torch.full((4, 6), 0.5)
    mask[0, 0] = 0.51
    mask[3, 5] = 0.2
    pan = _merge(mask[None], [0.9], [3], mask_thr=0.5)
    expected = torch.full((4, 6), VOID)
    expected[0, 0] = 3
    assert torch.equal(pan, expected)
    pan = _merge(mask[None], [0.9], [3], mask_thr=0.3)
    assert (pan == 3).sum() == 23 and pan[3, 5] == VOID


def test_no_score_above_threshold_gives_all_void():
    pan = _merge(torch.ones(3, 4, 6), [0.1, 0.2, 0.29], [0, 3, 1])
    assert (pan == VOID).all()


def test_no_queries_gives_all_void():
    pan = mask_wise_merge(
        torch.zeros(0, 4, 6), torch.zeros(0), torch.zeros(0,
                                                          dtype=torch.long),
        num_things_classes=NUM_THINGS, num_classes=NUM_CLASSES)
    assert pan.shape == (4, 6) and (pan == VOID).all()


def test_two_stuff_queries_of_one_class_merge():
    masks = torch.stack([_rect(0, 2, 0, 6), _rect(2, 4, 0, 6)])
    pan = _merge(masks, [0.9, 0.8], [3, 3])
    assert (pan == 3).all()
    assert pan.unique().tolist() == [3]


def test_fully_covered_candidate_consumes_no_id():
    masks = torch.stack([
        _rect(0, 4, 0, 3),  # thing, k = 1
        _rect(1, 3, 0, 2),  # inside the first: paints nothing
        _rect(0, 0, 0, 0),  # empty mask: paints nothing
        _rect(0, 4, 3, 6),  # thing, must get k = 2
    ])
    pan = _merge(masks, [0.9, 0.8, 0.7, 0.6], [0, 1, 2, 2])
    assert (pan[:, :3] == 0 + 1 * OFFSET).all()
    assert (pan[:, 3:] == 2 + 2 * OFFSET).all()


def test_overlap_thr_drops_mostly_covered_segments():
    masks = torch.stack([
        _rect(0, 4, 0, 4),  # 16 pixels
        _rect(0, 4, 2, 6),  # 16 pixels, 8 taken: fraction 0.5
        _rect(0, 1, 3, 6),  # 3 pixels, 1 taken by query 0 and 2 by query 1
        _rect(2, 4, 4, 6),  # 4 pixels, all taken if query 1 paints
    ])
    scores = [0.9, 0.8, 0.7, 0.6]
    labels = [0, 1, 3, 2]
    # Off (None): query 1 paints its free half, queries 2 and 3 nothing.
    pan = _merge(masks, scores, labels)
    assert (pan[:, 4:] == 1 + 2 * OFFSET).all()
    # 0.5 is not > 0.5: query 1 is kept.
    pan = _merge(masks, scores, labels, overlap_thr=0.5)
    assert (pan[:, 4:] == 1 + 2 * OFFSET).all()
    # 0.5 > 0.4: query 1 is dropped; query 2 (2/3 free) and 3 (all free)
    # are kept and query 3 takes the next thing id.
    pan = _merge(masks, scores, labels, overlap_thr=0.4)
    assert (pan[0, 4:] == 3).all()
    assert (pan[2:, 4:] == 2 + 2 * OFFSET).all()
    assert (pan[1, 4:] == VOID).all()
    # 1/3 > 0.3: query 2 dropped too.
    pan = _merge(masks, scores, labels, overlap_thr=0.3)
    assert (pan[0, 4:] == VOID).all()
    assert (pan[2:, 4:] == 2 + 2 * OFFSET).all()


def test_ties_keep_query_order():
    masks = torch.ones(3, 4, 6)
    pan = _merge(masks, [0.5, 0.7, 0.7], [0, 1, 2])
    # Queries 1 and 2 tie; the earlier one (1) is painted first.
    assert (pan == 1 + 1 * OFFSET).all()
    # Larger tie groups too (stable sort, not backend dependent).
    labels = [i % NUM_THINGS for i in range(40)]
    pan = _merge(torch.ones(40, 4, 6), [0.5] * 40, labels)
    assert (pan == 0 + 1 * OFFSET).all()


@pytest.mark.parametrize('bad', [
    dict(masks=torch.rand(4, 6), scores=[0.5], labels=[0]),
    dict(masks=torch.rand(2, 4, 6), scores=[0.5], labels=[0, 1]),
    dict(masks=torch.rand(1, 4, 6), scores=[0.5], labels=[NUM_CLASSES]),
])
def test_invalid_inputs_raise(bad):
    with pytest.raises(ValueError):
        _merge(bad['masks'], bad['scores'], bad['labels'])


def _naive_merge(masks, scores, labels, score_thr, mask_thr, overlap_thr):
    """Per-pixel Python statement of the algorithm, no tensor ops."""
    masks, scores, labels = masks.tolist(), scores.tolist(), labels.tolist()
    num, height, width = len(masks), len(masks[0]), len(masks[0][0])
    out = [[VOID] * width for _ in range(height)]
    order = sorted(range(num), key=lambda i: (-scores[i], i))
    next_id = 1
    for i in order:
        if scores[i] < score_thr:
            continue
        pixels = [(y, x) for y in range(height) for x in range(width)
                  if masks[i][y][x] > mask_thr]
        free = [(y, x) for y, x in pixels if out[y][x] == VOID]
        if not free:
            continue
        if overlap_thr is not None and \
                (len(pixels) - len(free)) / len(pixels) > overlap_thr:
            continue
        if labels[i] < NUM_THINGS:
            value = labels[i] + next_id * OFFSET
            next_id += 1
        else:
            value = labels[i]
        for y, x in free:
            out[y][x] = value
    return torch.tensor(out, dtype=torch.long)


def _assert_naive(masks, scores, labels, mask_thr, overlap_thr):
    pan = mask_wise_merge(
        masks, scores, labels, NUM_THINGS, NUM_CLASSES, score_thr=0.3,
        mask_thr=mask_thr, overlap_thr=overlap_thr)
    expected = _naive_merge(masks, scores, labels, 0.3, mask_thr,
                            overlap_thr)
    assert torch.equal(pan, expected)


@pytest.mark.parametrize('seed', [0, 1, 2, 3])
@pytest.mark.parametrize('overlap_thr', [None, 0.5])
def test_matches_naive_reference(seed, overlap_thr):
    gen = torch.Generator().manual_seed(seed)
    num = 12
    masks = torch.rand(num, 7, 9, generator=gen)
    # Scores on a coarse grid so that ties happen.
    scores = torch.randint(0, 11, (num, ), generator=gen).float() / 10
    labels = torch.randint(0, NUM_CLASSES, (num, ), generator=gen)
    _assert_naive(masks, scores, labels, 0.6, overlap_thr)


@pytest.mark.parametrize('seed', [0, 1, 2])
@pytest.mark.parametrize('overlap_thr', [None, 0.3])
def test_compact_masks_match_naive_reference(seed, overlap_thr):
    # blobs with small bounding boxes (the merge works inside them), some
    # on the border, one empty, one covering the image
    gen = torch.Generator().manual_seed(seed)
    num, height, width = 10, 13, 17
    ys, xs = torch.meshgrid(torch.arange(height), torch.arange(width),
                            indexing='ij')
    masks = torch.zeros(num, height, width)
    for i in range(num - 2):
        cy = torch.randint(-2, height + 2, (1, ), generator=gen)
        cx = torch.randint(-2, width + 2, (1, ), generator=gen)
        radius = torch.randint(1, 6, (1, ), generator=gen)
        dist = ((ys - cy)**2 + (xs - cx)**2).float().sqrt()
        masks[i] = (1 - dist / (2 * radius)).clamp(0, 1)
    masks[-1] = 0.9  # all pixels; masks[-2] stays empty
    scores = torch.rand(num, generator=gen) * 0.7 + 0.3
    labels = torch.randint(0, NUM_CLASSES, (num, ), generator=gen)
    _assert_naive(masks, scores, labels, 0.5, overlap_thr)


def test_binary_masks_merge_as_their_probabilities():
    gen = torch.Generator().manual_seed(5)
    probs = torch.rand(6, 8, 11, generator=gen)
    scores = torch.rand(6, generator=gen)
    labels = torch.randint(0, NUM_CLASSES, (6, ), generator=gen)
    args = (scores, labels, NUM_THINGS, NUM_CLASSES)
    assert torch.equal(
        mask_wise_merge(probs > 0.6, *args, score_thr=0.2, overlap_thr=0.4),
        mask_wise_merge(probs, *args, score_thr=0.2, mask_thr=0.6,
                        overlap_thr=0.4))


@pytest.mark.parametrize('density', [0.0, 0.001, 0.05, 0.5, 1.0])
def test_mask_boxes_equal_mmdet_mask2bbox(density):
    gen = torch.Generator().manual_seed(int(density * 1000))
    masks = torch.rand(9, 13, 17, generator=gen) < density
    masks[0] = False  # empty
    masks[1] = False
    masks[1, 12, 16] = True  # one pixel in the last row and column
    masks[2] = False
    masks[2, 0, 0] = True  # one pixel in the first
    assert torch.equal(mask_boxes(masks), mask2bbox(masks))
    # strided views (a crop, every other column) give the same boxes
    view = masks[:, 2:11, ::2]
    assert torch.equal(mask_boxes(view), mask2bbox(view))


def test_mask_boxes_of_no_masks_and_bad_input():
    assert mask_boxes(torch.zeros(0, 4, 5, dtype=torch.bool)).shape == (0, 4)
    assert mask_boxes(torch.zeros(2, 0, 5, dtype=torch.bool)).shape == (2, 4)
    with pytest.raises(ValueError, match='bool'):
        mask_boxes(torch.ones(2, 4, 5))
    with pytest.raises(ValueError, match='bool'):
        mask_boxes(torch.ones(4, 5, dtype=torch.bool))

"""Tests of PanopticSegFormerFusionHead (mask-wise inference)."""
import pytest
import torch
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmdet.structures.mask import mask2bbox
from mmengine.structures import InstanceData, PixelData

import panseg_plugin  # noqa: F401  registers the plugin

NUM_THINGS = 3
NUM_STUFF = 2
NUM_CLASSES = NUM_THINGS + NUM_STUFF
OFFSET = 1000
PAD_SHAPE = (40, 48)  # batch_input_shape
MASK_SHAPE = (5, 6)  # stride 8
IMG_SHAPES = [(40, 30), (25, 48)]
ORI_SHAPES = [(60, 45), (20, 37)]
LOW, HIGH = -10.0, 10.0  # logits


def _build(**kwargs):
    cfg = dict(
        type='PanopticSegFormerFusionHead',
        num_things_classes=NUM_THINGS,
        num_stuff_classes=NUM_STUFF)
    cfg.update(kwargs)
    return MODELS.build(cfg)


def _data_samples():
    samples = []
    for img_shape, ori_shape in zip(IMG_SHAPES, ORI_SHAPES):
        samples.append(
            DetDataSample(
                metainfo=dict(
                    batch_input_shape=PAD_SHAPE,
                    img_shape=img_shape,
                    ori_shape=ori_shape,
                    pad_shape=PAD_SHAPE)))
    return samples


def _random_inputs(num_queries=7, seed=0):
    gen = torch.Generator().manual_seed(seed)
    cls = torch.randn(2, num_queries, NUM_CLASSES, generator=gen) * 3
    masks = torch.randn(2, num_queries, *MASK_SHAPE, generator=gen) * 3
    return cls, masks


def _one_hot_logits(labels):
    """Class logits making query i confident of labels[i] only."""
    cls = torch.full((len(labels), NUM_CLASSES), LOW)
    for i, label in enumerate(labels):
        cls[i, label] = HIGH
    return cls


def test_registered_and_loss_is_empty():
    head = _build()
    assert type(head).__name__ == 'PanopticSegFormerFusionHead'
    assert head.num_classes == NUM_CLASSES
    assert head.loss() == dict()
    assert len(list(head.parameters())) == 0


@pytest.mark.parametrize('rescale', [True, False])
def test_output_shapes_and_dtypes(rescale):
    head = _build(max_per_image=4)
    cls, masks = _random_inputs()
    results = head.predict(cls, masks, _data_samples(), rescale=rescale)
    assert len(results) == 2
    shapes = ORI_SHAPES if rescale else IMG_SHAPES
    for result, shape in zip(results, shapes):
        assert set(result) == {'pan_results', 'ins_results'}
        pan = result['pan_results']
        assert isinstance(pan, PixelData)
        assert pan.sem_seg.shape == (1, *shape)
        assert pan.sem_seg.dtype == torch.long
        ins = result['ins_results']
        assert isinstance(ins, InstanceData)
        assert ins.masks.shape == (4, *shape)
        assert ins.masks.dtype == torch.bool
        assert ins.bboxes.shape == (4, 4)
        assert ins.bboxes.dtype == torch.float32
        assert ins.labels.shape == (4, ) and ins.labels.dtype == torch.long
        assert ins.scores.shape == (4, )
        # Ids follow the convention: void, stuff label, or thing + k*OFFSET.
        for value in pan.sem_seg.unique().tolist():
            label, k = value % OFFSET, value // OFFSET
            if label == NUM_CLASSES or label >= NUM_THINGS:
                assert k == 0
            else:
                assert k >= 1


def test_panoptic_ids_follow_convention():
    head = _build()
    # Query 0: thing 2 on the left half; query 1: stuff (label 3) on the
    # right half; query 2: thing 1 on the bottom row, lower score; query 3:
    # below the score threshold.
    cls = _one_hot_logits([2, 3, 1, 0])
    cls[2, 1] = 1.0
    cls[3, 0] = -2.0
    masks = torch.full((4, *MASK_SHAPE), LOW)
    masks[0, :, :3] = HIGH
    masks[1, :, 3:] = HIGH
    masks[2, 4:, :] = HIGH
    masks[3] = HIGH
    samples = [
        DetDataSample(
            metainfo=dict(
                batch_input_shape=PAD_SHAPE,
                img_shape=PAD_SHAPE,
                ori_shape=PAD_SHAPE))
    ]
    (result, ) = head.predict(cls[None], masks[None], samples)
    pan = result['pan_results'].sem_seg[0]
    assert (pan[:, :20] == 2 + 1 * OFFSET).all()
    assert (pan[:28, 28:] == 3).all()
    # Query 2 is fully covered by queries 0 and 1 and query 3 is below
    # the score threshold: neither appears.
    assert pan.unique().tolist() == [3, 2 + 1 * OFFSET]
    ins = result['ins_results']
    assert float(ins.scores[0]) == pytest.approx(
        float(torch.sigmoid(torch.tensor(HIGH))))
    assert ins.labels[0] == 2
    assert ins.bboxes[0].tolist() == [0, 0, 24, 40]


def test_empty_prediction_gives_void_and_empty_instances():
    head = _build()
    cls = torch.zeros(2, 0, NUM_CLASSES)
    masks = torch.zeros(2, 0, *MASK_SHAPE)
    results = head.predict(cls, masks, _data_samples(), rescale=True)
    for result, shape in zip(results, ORI_SHAPES):
        pan = result['pan_results'].sem_seg
        assert pan.shape == (1, *shape) and (pan == NUM_CLASSES).all()
        ins = result['ins_results']
        assert ins.masks.shape == (0, *shape)
        assert ins.masks.dtype == torch.bool
        assert ins.bboxes.shape == (0, 4)
        assert ins.labels.shape == (0, ) and ins.labels.dtype == torch.long
        assert ins.scores.shape == (0, )


def test_no_score_above_threshold_gives_all_void():
    head = _build(score_thr=0.3)
    cls = torch.full((2, 6, NUM_CLASSES), -1.0)  # sigmoid(-1) ~ 0.27
    masks = torch.full((2, 6, *MASK_SHAPE), HIGH)
    results = head.predict(cls, masks, _data_samples(), rescale=False)
    for result in results:
        assert (result['pan_results'].sem_seg == NUM_CLASSES).all()


def test_instances_top_k_respects_max_per_image():
    head = _build(max_per_image=5, panoptic_on=False)
    cls, masks = _random_inputs(num_queries=9, seed=1)
    results = head.predict(cls, masks, _data_samples())
    for result, cls_img in zip(results, cls):
        assert set(result) == {'ins_results'}
        ins = result['ins_results']
        assert len(ins) == 5
        assert (ins.labels < NUM_THINGS).all()
        expected = cls_img[:, :NUM_THINGS].sigmoid().flatten().topk(5)[0]
        torch.testing.assert_close(ins.scores, expected)
    # Fewer candidates than max_per_image: all of them.
    head = _build(max_per_image=100, panoptic_on=False)
    results = head.predict(cls[:, :2], masks[:, :2], _data_samples())
    assert len(results[0]['ins_results']) == 2 * NUM_THINGS


def test_mask_score_power_scales_scores():
    cls, masks = _random_inputs(num_queries=6, seed=2)
    plain = _build(max_per_image=6, panoptic_on=False).predict(
        cls, masks, _data_samples())
    scaled = _build(
        max_per_image=6, panoptic_on=False, mask_score_power=2.0).predict(
            cls, masks, _data_samples())
    for a, b in zip(plain, scaled):
        a, b = a['ins_results'], b['ins_results']
        assert (b.scores <= a.scores + 1e-6).all()
        # Same candidates, same masks: only the scores change.
        assert torch.equal(a.masks, b.masks)
        assert torch.equal(a.labels, b.labels)


def test_padding_is_cropped():
    head = _build()
    # Image 1 has img_shape (25, 48): mask rows 4 (pixels 32-39) are
    # padding only, and bilinear upsampling does not reach row 24.
    cls = _one_hot_logits([0, 4])[None].repeat(2, 1, 1)
    masks = torch.full((2, 2, *MASK_SHAPE), LOW)
    masks[:, :, 4] = HIGH
    results = head.predict(cls, masks, _data_samples(), rescale=False)
    pan = results[1]['pan_results'].sem_seg
    assert (pan == NUM_CLASSES).all()
    ins = results[1]['ins_results']
    assert not ins.masks.any()
    assert (ins.bboxes == 0).all()
    # Image 0 (img_shape (40, 30)) sees the same rows: they are valid.
    assert (results[0]['pan_results'].sem_seg != NUM_CLASSES).any()


def test_instance_only_and_panoptic_only_keys():
    cls, masks = _random_inputs()
    res = _build(instance_on=False).predict(cls, masks, _data_samples())
    assert all(set(r) == {'pan_results'} for r in res)
    res = _build(panoptic_on=False).predict(cls, masks, _data_samples())
    assert all(set(r) == {'ins_results'} for r in res)


def test_bad_shapes_raise():
    head = _build()
    cls, masks = _random_inputs()
    with pytest.raises(ValueError):
        head.predict(cls[..., :-1], masks, _data_samples())
    with pytest.raises(ValueError):
        head.predict(cls, masks[:, :-1], _data_samples())
    with pytest.raises(ValueError):
        head.predict(cls, masks, _data_samples()[:1])


def _assert_same_results(got, want):
    """The outputs ``got`` has are those of ``want``: panoptic maps and
    instance masks, labels and boxes exactly, scores to float rounding
    (sigmoid and interpolation may round an element differently with
    another number of masks)."""
    if 'pan_results' in got:
        assert torch.equal(got['pan_results'].sem_seg,
                           want['pan_results'].sem_seg)
    if 'ins_results' in got:
        for key in ('masks', 'labels', 'bboxes'):
            assert torch.equal(got['ins_results'].get(key),
                               want['ins_results'].get(key)), key
        torch.testing.assert_close(got['ins_results'].scores,
                                   want['ins_results'].scores,
                                   rtol=1e-6, atol=0)


@pytest.mark.parametrize('rescale', [True, False])
@pytest.mark.parametrize('mask_score_power', [0.0, 2.0])
def test_chunked_upsampling_changes_no_result(rescale, mask_score_power):
    cls, masks = _random_inputs(num_queries=11, seed=3)
    masks[0, 4] = LOW  # an empty mask: a zero box
    results = [
        _build(chunk_size=size, score_thr=0.1, max_per_image=13,
               mask_score_power=mask_score_power).predict(
                   cls, masks, _data_samples(), rescale=rescale)
        for size in (1, 3, 100)
    ]
    for result in results[:2]:
        for got, want in zip(result, results[2]):
            _assert_same_results(got, want)
    for result in results[2]:
        ins = result['ins_results']
        # boxes as mmdet's mask2bbox computes them (zeros when empty)
        assert torch.equal(ins.bboxes, mask2bbox(ins.masks).float())


@pytest.mark.parametrize('mask_score_power', [0.0, 2.0])
def test_panoptic_reusing_instance_masks_changes_nothing(mask_score_power):
    # max_per_image=9 over 7 queries: some queries are instances with two
    # classes; query 0 of image 0 is a stuff segment for panoptic (and an
    # instance too, with a low thing score)
    cls, masks = _random_inputs(num_queries=7, seed=4)
    cls[0, 0, NUM_THINGS:] = HIGH
    kwargs = dict(score_thr=0.2, max_per_image=9,
                  mask_score_power=mask_score_power)
    both = _build(**kwargs).predict(cls, masks, _data_samples(), True)
    alone = _build(instance_on=False, **kwargs).predict(
        cls, masks, _data_samples(), True)
    instances = _build(panoptic_on=False, **kwargs).predict(
        cls, masks, _data_samples(), True)
    for got, pan, ins in zip(both, alone, instances):
        assert torch.equal(got['pan_results'].sem_seg,
                           pan['pan_results'].sem_seg)
        assert (got['pan_results'].sem_seg != NUM_CLASSES).any()
        for key in ('masks', 'labels', 'bboxes', 'scores'):
            assert torch.equal(got['ins_results'].get(key),
                               ins['ins_results'].get(key)), key


@pytest.mark.parametrize('rescale', [True, False])
@pytest.mark.parametrize('max_per_image', [4, 30])
def test_full_size_results_do_not_depend_on_chunks_or_reuse(
        rescale, max_per_image):
    # masks above torch's size for splitting a sum over threads, with the
    # mask score factor on: the same outputs whatever the chunks and
    # whether panoptic reuses the instance masks (scores to float
    # rounding); 4 instances of 12 queries are distinct queries, 30
    # repeat some
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        gen = torch.Generator().manual_seed(max_per_image)
        cls = torch.randn(1, 12, NUM_CLASSES, generator=gen) * 3
        masks = torch.randn(1, 12, 50, 75, generator=gen) * 3
        samples = [DetDataSample(metainfo=dict(
            batch_input_shape=(400, 600), img_shape=(390, 590),
            ori_shape=(480, 700), pad_shape=(400, 600)))]
        kwargs = dict(score_thr=0.2, max_per_image=max_per_image,
                      mask_score_power=2.0)
        runs = [_build(chunk_size=size, **kwargs).predict(
            cls, masks, samples, rescale)[0] for size in (1, 3, 100)]
        runs.append(_build(instance_on=False, **kwargs).predict(
            cls, masks, samples, rescale)[0])
        runs.append(_build(panoptic_on=False, **kwargs).predict(
            cls, masks, samples, rescale)[0])
    finally:
        torch.set_num_threads(threads)
    want = runs[0]
    assert (want['pan_results'].sem_seg != NUM_CLASSES).any()
    for got in runs[1:]:
        _assert_same_results(got, want)

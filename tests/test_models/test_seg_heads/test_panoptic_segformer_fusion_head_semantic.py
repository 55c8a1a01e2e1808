"""Semantic output (``semantic_on``) of PanopticSegFormerFusionHead: the
class of each pixel of the same mask-wise merged map, void elsewhere."""
import pytest
import torch
from mmdet.evaluation import SemSegMetric
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmengine.structures import PixelData

import panseg_plugin  # noqa: F401  registers the plugin
from panseg_plugin.models.utils import semantic_from_panoptic

NUM_THINGS = 3
NUM_STUFF = 2
NUM_CLASSES = NUM_THINGS + NUM_STUFF
OFFSET = 1000
PAD_SHAPE = (40, 48)
MASK_SHAPE = (5, 6)
IMG_SHAPES = [(40, 30), (25, 48)]
ORI_SHAPES = [(60, 45), (20, 37)]


def _build(**kwargs):
    cfg = dict(type='PanopticSegFormerFusionHead',
               num_things_classes=NUM_THINGS, num_stuff_classes=NUM_STUFF)
    cfg.update(kwargs)
    return MODELS.build(cfg)


def _data_samples():
    return [
        DetDataSample(metainfo=dict(
            batch_input_shape=PAD_SHAPE, img_shape=img_shape,
            ori_shape=ori_shape, pad_shape=PAD_SHAPE))
        for img_shape, ori_shape in zip(IMG_SHAPES, ORI_SHAPES)
    ]


def _random_inputs(num_queries=9, seed=0):
    gen = torch.Generator().manual_seed(seed)
    cls = torch.randn(2, num_queries, NUM_CLASSES, generator=gen) * 3
    masks = torch.randn(2, num_queries, *MASK_SHAPE, generator=gen) * 3
    return cls, masks


def test_semantic_from_panoptic_by_hand():
    void = NUM_CLASSES
    pan = torch.tensor([[0 + 1 * OFFSET, 2 + 2 * OFFSET, 3],
                        [4, void, 1 + 3 * OFFSET]])
    sem = semantic_from_panoptic(pan, NUM_CLASSES)
    assert sem.dtype == torch.long
    assert sem.tolist() == [[0, 2, 3], [4, 255, 1]]
    assert semantic_from_panoptic(pan, NUM_CLASSES, void_value=-1)[1, 1] == -1


@pytest.mark.parametrize('rescale', [False, True])
def test_semantic_is_the_class_of_the_panoptic_map(rescale):
    cls, masks = _random_inputs()
    both = _build(semantic_on=True).predict(
        cls, masks, _data_samples(), rescale=rescale)
    key = 'ori_shape' if rescale else 'img_shape'
    for result, sample in zip(both, _data_samples()):
        assert set(result) == {'pan_results', 'ins_results', 'sem_results'}
        pan = result['pan_results'].sem_seg
        sem = result['sem_results'].sem_seg
        assert sem.shape == (1, *sample.metainfo[key])
        assert sem.dtype == torch.long
        things = pan >= OFFSET
        assert torch.equal(sem[things], pan[things] % OFFSET)
        stuff = (pan < NUM_CLASSES)
        assert torch.equal(sem[stuff], pan[stuff])
        void = pan == NUM_CLASSES
        assert bool((sem[void] == 255).all())
        assert set(sem.unique().tolist()) <= set(range(NUM_CLASSES)) | {255}
    # the random logits give segments of both kinds and void pixels
    pans = torch.cat([r['pan_results'].sem_seg.flatten() for r in both])
    assert (pans >= OFFSET).any() and (pans < NUM_CLASSES).any()
    assert (pans == NUM_CLASSES).any()


def test_switching_semantic_on_leaves_the_other_results_exact():
    cls, masks = _random_inputs(seed=3)
    old = _build().predict(cls, masks, _data_samples(), rescale=True)
    new = _build(semantic_on=True).predict(
        cls, masks, _data_samples(), rescale=True)
    for a, b in zip(old, new):
        assert set(a) == {'pan_results', 'ins_results'}
        assert torch.equal(a['pan_results'].sem_seg, b['pan_results'].sem_seg)
        for key in ('scores', 'labels', 'bboxes', 'masks'):
            assert torch.equal(a['ins_results'][key], b['ins_results'][key])


def test_semantic_only_and_void_value():
    cls, masks = _random_inputs(seed=1)
    results = _build(panoptic_on=False, instance_on=False, semantic_on=True,
                     semantic_void_value=NUM_CLASSES).predict(
                         cls, masks, _data_samples())
    assert all(set(r) == {'sem_results'} for r in results)
    full = _build(semantic_on=True).predict(cls, masks, _data_samples())
    for r, f in zip(results, full):
        expected = f['sem_results'].sem_seg.clone()
        expected[expected == 255] = NUM_CLASSES
        assert torch.equal(r['sem_results'].sem_seg, expected)


def test_no_segment_gives_all_void():
    cls = torch.full((2, 4, NUM_CLASSES), -10.0)
    masks = torch.zeros(2, 4, *MASK_SHAPE)
    results = _build(semantic_on=True).predict(cls, masks, _data_samples())
    for result, shape in zip(results, IMG_SHAPES):
        assert torch.equal(result['sem_results'].sem_seg,
                           torch.full((1, *shape), 255, dtype=torch.long))


def test_void_value_that_is_a_class_is_refused():
    with pytest.raises(ValueError, match='semantic_void_value=4 is a class'):
        _build(semantic_on=True, semantic_void_value=4)
    _build(semantic_void_value=4)  # not checked while semantic_on is off


def test_mask2former_test_cfg_key_is_pointed_to_the_fusion_head():
    from panseg_plugin.models.utils import refuse_test_cfg
    with pytest.raises(ValueError, match='semantic_on -> model.panoptic_'
                       'fusion_head.semantic_on'):
        refuse_test_cfg(dict(semantic_on=True))


def test_mmdet_semseg_metric_reads_the_output():
    """mIoU by mmdet's SemSegMetric: a prediction equal to the ground
    truth scores 100; void predicted on labelled pixels counts as a miss."""
    cls, masks = _random_inputs(seed=0)  # leaves void pixels
    results = _build(semantic_on=True).predict(cls, masks, _data_samples())
    metric = SemSegMetric(iou_metrics=['mIoU'])
    metric.dataset_meta = dict(classes=tuple(f'c{i}'
                                             for i in range(NUM_CLASSES)))
    samples = []
    for result in results:
        pred = result['sem_results']
        gt = pred.sem_seg.clone()
        gt[gt == 255] = 0  # the truth labels what the model left void
        sample = DetDataSample(pred_sem_seg=pred,
                               gt_sem_seg=PixelData(sem_seg=gt))
        samples.append(sample.to_dict())  # as mmengine's Evaluator does
    metric.process({}, samples)
    scores = metric.compute_metrics(metric.results)
    assert set(scores) == {'aAcc', 'mIoU', 'mAcc'}
    void = sum(int((r['sem_results'].sem_seg == 255).sum()) for r in results)
    total = sum(r['sem_results'].sem_seg.numel() for r in results)
    assert void > 0
    assert scores['aAcc'] == pytest.approx(
        round(100 * (total - void) / total, 2), abs=0.01)

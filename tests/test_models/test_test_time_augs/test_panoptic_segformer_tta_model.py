"""PanopticSegFormerTTAModel: views merged segment by segment."""
import copy

import pytest
import torch
from mmengine.config import Config
from mmengine.model import BaseModel

from panseg_plugin.models.test_time_augs import PanopticSegFormerTTAModel
from panseg_plugin.testing import (demo_panoptic_batch,
                                   tiny_panoptic_segformer_cfg,
                                   untrained_model)


@pytest.fixture(scope='module')
def model():
    """Random weights, with class and mask layers scaled up so that the
    maps hold several segments of several classes."""
    model = untrained_model(
        Config(dict(model=tiny_panoptic_segformer_cfg()))).eval()
    head = model.bbox_head
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for layer, std in ((head.mask_branch, 0.5), (head.cls_branch, 0.5)):
            layer.weight.copy_(
                torch.randn(layer.weight.shape, generator=generator) * std)
    return model


@pytest.fixture(scope='module')
def batch():
    # two odd sizes: the smaller image is padded, so masks are used
    return demo_panoptic_batch(image_shapes=((60, 68), (52, 76)))


def predict(model, batch):
    with torch.no_grad():
        return model.test_step(copy.deepcopy(batch))


def tta_predict(model, views, **kwargs):
    """``views``: list of (inputs, data_samples) batches, one per view."""
    tta = PanopticSegFormerTTAModel(module=model, **kwargs)
    data = dict(inputs=[copy.deepcopy(v[0]) for v in views],
                data_samples=[copy.deepcopy(v[1]) for v in views])
    with torch.no_grad():
        return tta.test_step(data)


def flipped(batch):
    inputs = [img.flip(-1) for img in batch['inputs']]
    samples = copy.deepcopy(batch['data_samples'])
    for sample in samples:
        sample.set_metainfo(dict(flip=True, flip_direction='horizontal'))
    return inputs, samples


def assert_same_results(got, expected):
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        assert torch.equal(g.pred_panoptic_seg.sem_seg,
                           e.pred_panoptic_seg.sem_seg)
        for key in ('scores', 'labels', 'bboxes', 'masks'):
            assert torch.equal(g.pred_instances.get(key),
                               e.pred_instances.get(key)), key


def test_one_identity_view_gives_exactly_the_detector_result(model, batch):
    expected = predict(model, batch)
    # the test is only worth something with several segments
    for sample in expected:
        assert len(sample.pred_panoptic_seg.sem_seg.unique()) >= 4
    got = tta_predict(model, [(batch['inputs'], batch['data_samples'])])
    assert_same_results(got, expected)
    for sample in got:
        assert sample.pred_panoptic_seg.sem_seg.shape[1:] == \
            tuple(sample.ori_shape)
        assert sample.pred_instances.masks.dtype == torch.bool
        assert 'pan_candidates' not in sample
        assert 'ins_candidates' not in sample


@pytest.mark.parametrize('score_mode', ['mean', 'views'])
def test_a_repeated_view_changes_nothing(model, batch, score_mode):
    # two copies: (x + x) / 2 == x exactly in floating point
    view = (batch['inputs'], batch['data_samples'])
    got = tta_predict(model, [view, view], score_mode=score_mode)
    assert_same_results(got, predict(model, batch))


def test_flipped_view_is_mapped_back(model, batch):
    inputs, samples = flipped(batch)
    got = tta_predict(model, [(inputs, samples)])
    on_flipped = predict(model, dict(inputs=inputs, data_samples=samples))
    for g, e in zip(got, on_flipped):
        assert torch.equal(g.pred_panoptic_seg.sem_seg,
                           e.pred_panoptic_seg.sem_seg.flip(-1))
        assert torch.equal(g.pred_instances.masks,
                           e.pred_instances.masks.flip(-1))
        assert torch.equal(g.pred_instances.scores,
                           e.pred_instances.scores)


def test_flip_and_identity_merge_into_one_map(model, batch):
    got = tta_predict(model, [(batch['inputs'], batch['data_samples']),
                              flipped(batch)])
    for sample, shape in zip(got, ((60, 68), (52, 76))):
        pan = sample.pred_panoptic_seg.sem_seg
        assert pan.shape == (1, *shape) and pan.dtype == torch.long
        inst = sample.pred_instances
        assert inst.masks.shape[1:] == shape
        assert len(inst) <= model.panoptic_fusion_head.max_per_image
        assert (inst.scores[:-1] >= 0).all()
        assert inst.labels.max() < model.panoptic_fusion_head.\
            num_things_classes


def test_bad_arguments(model):
    with pytest.raises(ValueError, match='iou_thr'):
        PanopticSegFormerTTAModel(module=model, iou_thr=1.0)
    with pytest.raises(ValueError, match='score_mode'):
        PanopticSegFormerTTAModel(module=model, score_mode='max')

    class NoFusionHead(BaseModel):

        def forward(self, inputs, data_samples=None, mode='tensor'):
            return inputs

    with pytest.raises(TypeError, match='panoptic_fusion_head'):
        PanopticSegFormerTTAModel(module=NoFusionHead())

"""The released architecture at toy size: training and inference on a
padded batch (odd image sizes, an image without things), no fixtures."""
import pytest
import torch
from mmdet.registry import MODELS
from mmengine import Config

from panseg_plugin.testing import demo_panoptic_batch

from official_r50 import CONFIG_DIR

TOY = (CONFIG_DIR.parents[1] / 'projects' / 'toy_panoptic' / 'configs' /
       'panoptic-segformer-cvpr22_r18-tiny_toy-panoptic.py')


@pytest.fixture(scope='module')
def model():
    torch.manual_seed(0)
    cfg = Config.fromfile(str(TOY))
    cfg.model.backbone.init_cfg = None
    model = MODELS.build(cfg.model)
    model.init_weights()
    return model


def batch(model, training):
    data = demo_panoptic_batch(image_shapes=((60, 68), (52, 76)),
                               num_things=(2, 0),
                               stuff_labels=((3, 4), (5, )))
    return model.data_preprocessor(data, training)


@pytest.mark.parametrize('rounds', [1, 3])
def test_losses_and_gradients(model, rounds):
    model.train()
    model.bbox_head.query_filter_rounds = rounds
    data = batch(model, True)
    losses = model.loss(data['inputs'], data['data_samples'])
    model.bbox_head.query_filter_rounds = 1
    num_stuff_blocks = len(model.bbox_head.stuff_mask_decoder.layers)
    expected = {'loss_cls', 'loss_bbox', 'loss_iou', 'loss_mask_things',
                'loss_mask_stuff', 'd0.loss_cls', 'd0.loss_bbox',
                'd0.loss_iou', 'd0.loss_mask_things_f',
                'd1.loss_mask_things_f'}
    expected |= {f'd{j}.loss_{k}_stuff_f' for j in range(num_stuff_blocks)
                 for k in ('mask', 'cls')}
    assert set(losses) == expected
    assert all(torch.isfinite(v) for v in losses.values())
    model.zero_grad()
    sum(losses.values()).backward()
    missing = [n for n, p in model.named_parameters()
               if p.requires_grad and p.grad is None]
    assert not missing


def test_predict_on_padded_batch(model):
    model.eval()
    data = batch(model, False)
    with torch.no_grad():
        results = model.predict(data['inputs'], data['data_samples'])
    for result, shape in zip(results, ((60, 68), (52, 76))):
        pan = result.pred_panoptic_seg.sem_seg
        assert pan.shape == (1, ) + shape
        labels = pan % 1000
        assert ((labels < 6) | (pan == 6)).all()
        ins = result.pred_instances
        assert len(ins) == 20 and ins.masks.shape[1:] == shape
        assert (ins.labels < 3).all()
        assert (ins.scores[:-1] >= ins.scores[1:]).all()


def test_tensor_mode(model):
    model.eval()
    data = batch(model, False)
    with torch.no_grad():
        cls, boxes = model(data['inputs'], data['data_samples'],
                           mode='tensor')
    assert cls.shape == (2, 2, 20, 3) and boxes.shape == (2, 2, 20, 4)

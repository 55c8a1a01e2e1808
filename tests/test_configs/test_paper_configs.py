"""The paper configs build, match Table 1's parameter counts and run."""
import os.path as osp

import pytest
import torch
from mmengine.config import Config

import panseg_plugin  # noqa: F401
from mmdet.registry import MODELS
from panseg_plugin.testing import demo_panoptic_batch

CONFIG_DIR = osp.join(
    osp.dirname(__file__), '..', '..', 'configs', 'panoptic_segformer')

# config -> parameters reported in the paper's Table 1 (millions)
PAPER_PARAMS = {
    'panoptic-segformer_r50_8xb1-12e_coco-panoptic.py': 47.0,
    'panoptic-segformer_r50_8xb1-50e_coco-panoptic.py': 47.0,
    'panoptic-segformer_r101_8xb1-50e_coco-panoptic.py': 65.9,
    'panoptic-segformer_pvtv2-b0_8xb1-50e_coco-panoptic.py': 22.2,
    'panoptic-segformer_pvtv2-b2_8xb1-50e_coco-panoptic.py': 41.6,
    'panoptic-segformer_pvtv2-b5_8xb1-50e_coco-panoptic.py': 100.9,
}


def build_paper_model(name):
    """Build a paper config's model without downloading pretrained
    weights."""
    cfg = Config.fromfile(osp.join(CONFIG_DIR, name))
    cfg.model.backbone.init_cfg = None
    return MODELS.build(cfg.model)


@pytest.mark.parametrize('name', sorted(PAPER_PARAMS))
def test_parameter_count_within_5_percent_of_table_1(name):
    model = build_paper_model(name)
    millions = sum(p.numel() for p in model.parameters()) / 1e6
    paper = PAPER_PARAMS[name]
    assert abs(millions - paper) / paper < 0.05, \
        f'{name}: {millions:.2f}M parameters, paper {paper}M'

    # one forward pass (small input to stay fast on CPU)
    model.eval()
    data = model.data_preprocessor(
        demo_panoptic_batch(image_shapes=((96, 128), ), num_things=(1, ),
                            stuff_labels=((90, ), ),
                            num_things_classes=80), False)
    with torch.no_grad():
        out = model(**data, mode='tensor')
    assert out.cls_scores.shape == (1, 1, 400, 133)
    assert out.mask_preds.shape == (1, 1, 400, 12, 16)


@pytest.mark.slow
def test_r50_predict_at_800x1216():
    model = build_paper_model(
        'panoptic-segformer_r50_8xb1-50e_coco-panoptic.py').eval()
    data = model.data_preprocessor(
        demo_panoptic_batch(image_shapes=((800, 1216), ), num_things=(1, ),
                            stuff_labels=((90, ), ),
                            num_things_classes=80), False)
    with torch.no_grad():
        results = model(**data, mode='predict')
    assert results[0].pred_panoptic_seg.sem_seg.shape == (1, 800, 1216)

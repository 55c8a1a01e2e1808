"""The five configs of the authors' released models build, with the
release's parameter counts, thresholds, test scale and schedules."""
import math

import pytest
from mmdet.registry import MODELS
from mmengine import Config

from official_r50 import CONFIG_DIR, needs_fixtures, official_keys

PREFIX = 'panoptic-segformer-cvpr22_'
# name -> (parameters, quality threshold, epochs, milestone)
RELEASES = {
    'r50_8xb1-12e': (50_659_212, 0.25, 12, 8),
    'r50_8xb1-24e': (50_659_212, 0.25, 24, 18),
    'r101_8xb1-24e': (69_651_340, 0.25, 24, 18),
    'pvtv2-b5_8xb1-24e': (104_383_500, 0.3, 24, 18),
    'swin-l-p4-w7-224-in22k_8xb1-24e': (220_739_936, 0.3, 24, 18),
}
# parameters of the two unused branches the converter drops
DEAD_BRANCHES = 612_688


def load(name):
    return Config.fromfile(
        str(CONFIG_DIR / f'{PREFIX}{name}_coco-panoptic.py'))


@pytest.mark.parametrize('name', sorted(RELEASES))
def test_release_config(name):
    params, quality, epochs, milestone = RELEASES[name]
    cfg = load(name)
    cfg.model.backbone.init_cfg = None
    model = MODELS.build(cfg.model)
    assert sum(p.numel() for p in model.parameters()) == params
    fusion = model.panoptic_fusion_head
    assert (fusion.quality_thr_things, fusion.quality_thr_stuff) == (
        quality, quality)
    assert (fusion.overlap_thr_things, fusion.overlap_thr_stuff) == (0.4,
                                                                     0.2)
    assert model.num_queries == 300 and model.with_box_refine
    assert model.bbox_head.num_thing_candidates == 100
    assert cfg.model.data_preprocessor.pad_size_divisor == 1
    resize = [t for t in cfg.test_pipeline if t['type'] == 'Resize']
    assert resize[0]['scale'] == (1333, 800) and resize[0]['keep_ratio']
    assert math.isclose(cfg.optim_wrapper.optimizer.lr, 1.4e-4)
    assert cfg.optim_wrapper.optimizer.type == 'AdamW'
    assert cfg.optim_wrapper.clip_grad.max_norm == 0.1
    assert {k: v['lr_mult'] for k, v in
            cfg.optim_wrapper.paramwise_cfg.custom_keys.items()} == {
                'backbone': 0.1, 'sampling_offsets': 0.1,
                'reference_points': 0.1}
    assert cfg.train_cfg.max_epochs == epochs
    assert cfg.param_scheduler[0].milestones == [milestone]


@needs_fixtures
def test_r50_counts_match_the_official_model():
    """51,271,900 official parameters = ours + the two dropped branches."""
    buffers = ('running_mean', 'running_var', 'num_batches_tracked')
    official = sum(
        math.prod(shape) for key, shape in official_keys()
        if not key.endswith(buffers))
    dead = sum(
        math.prod(shape) for key, shape in official_keys()
        if key.startswith(('bbox_head.reg_branches2.',
                           'bbox_head.cls_thing_branches.')))
    assert official == 51_271_900 and dead == DEAD_BRANCHES
    assert RELEASES['r50_8xb1-24e'][0] == official - dead

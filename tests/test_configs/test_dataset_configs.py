"""The ADE20K and Cityscapes panoptic configs: they build, count the COCO
model's parameters except the classification branch, agree with their data
sets' classes, follow the recipe they state and evaluate PQ and mIoU; the
data check is on by default and can be switched off."""
import os.path as osp

import pytest
from mmdet.registry import DATASETS
from mmengine.config import Config
from mmengine.registry import init_default_scope

from panseg_plugin.utils.config_helpers import build_model

ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
CONFIG_DIR = osp.join(ROOT, 'configs', 'panoptic_segformer')
EMBED_DIMS = 256
# config -> (its COCO counterpart, things, stuff, crop, iterations)
CONFIGS = {
    'panoptic-segformer_r50_8xb2-160k_ade20k-panoptic.py':
    ('panoptic-segformer_r50_8xb1-50e_coco-panoptic.py', 100, 50,
     (640, 640), 160000),
    'panoptic-segformer_pvtv2-b0_8xb2-160k_ade20k-panoptic.py':
    ('panoptic-segformer_pvtv2-b0_8xb1-50e_coco-panoptic.py', 100, 50,
     (640, 640), 160000),
    'panoptic-segformer_pvtv2-b2_8xb2-160k_ade20k-panoptic.py':
    ('panoptic-segformer_pvtv2-b2_8xb1-50e_coco-panoptic.py', 100, 50,
     (640, 640), 160000),
    'panoptic-segformer_r50_8xb2-90k_cityscapes-panoptic.py':
    ('panoptic-segformer_r50_8xb1-50e_coco-panoptic.py', 8, 11,
     (512, 1024), 90000),
}
# measured: parameters of the models (random weights, nothing downloaded)
PARAMS = {
    'panoptic-segformer_r50_8xb2-160k_ade20k-panoptic.py': 46_502_900,
    'panoptic-segformer_pvtv2-b0_8xb2-160k_ade20k-panoptic.py': 21_481_236,
    'panoptic-segformer_pvtv2-b2_8xb2-160k_ade20k-panoptic.py': 43_634_036,
    'panoptic-segformer_r50_8xb2-90k_cityscapes-panoptic.py': 46_469_233,
}


def load(name):
    return Config.fromfile(osp.join(CONFIG_DIR, name))


def num_params(cfg):
    init_default_scope('mmdet')
    return sum(p.numel() for p in build_model(cfg).parameters())


@pytest.mark.parametrize('name', sorted(CONFIGS))
def test_parameters_are_cocos_but_the_class_branch(name):
    coco, things, stuff, _, _ = CONFIGS[name]
    count = num_params(load(name))
    # one linear layer (embed_dims + 1) x classes differs from COCO's 133
    assert count - num_params(load(coco)) == \
        (things + stuff - 133) * (EMBED_DIMS + 1)
    assert count == PARAMS[name]


@pytest.mark.parametrize('name', sorted(CONFIGS))
def test_classes_of_model_and_data_set_agree(name):
    _, things, stuff, _, _ = CONFIGS[name]
    cfg = load(name)
    for head in (cfg.model.bbox_head, cfg.model.panoptic_fusion_head):
        assert (head.num_things_classes, head.num_stuff_classes) == \
            (things, stuff)
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        meta = DATASETS.get(cfg[key].dataset.type).METAINFO
        assert len(meta['thing_classes']) == things
        assert len(meta['stuff_classes']) == stuff
        assert tuple(meta['classes']) == tuple(meta['thing_classes']) + \
            tuple(meta['stuff_classes'])
        assert len(meta['palette']) == things + stuff


@pytest.mark.parametrize('name', sorted(CONFIGS))
def test_recipe_and_pq_plus_miou(name):
    _, _, _, crop, iters = CONFIGS[name]
    cfg = load(name)
    train = cfg.train_dataloader.dataset.pipeline
    kinds = [t['type'] for t in train]
    assert kinds[2:] == ['RandomChoiceResize', 'RandomCrop',
                         'FilterAnnotations', 'RandomFlip',
                         'PhotoMetricDistortion', 'PackDetInputs']
    assert train[3]['crop_size'] == crop
    shorts = [s for _, s in train[2]['scales']]
    # the shorter side 0.5x to 2x of the test size, 16 steps
    test_short = min(crop) if crop == (640, 640) else 1024
    assert (min(shorts), max(shorts), len(shorts)) == (
        test_short // 2, test_short * 2, 16)
    assert cfg.train_cfg.max_iters == iters
    assert cfg.train_dataloader.batch_size * 8 == 16
    assert cfg.optim_wrapper.optimizer.lr == 1e-4
    assert cfg.optim_wrapper.optimizer.weight_decay == 0.05
    assert cfg.param_scheduler[0]['type'] == 'PolyLR'
    assert cfg.model.panoptic_fusion_head.semantic_on
    metrics = [m['type'] for m in cfg.val_evaluator]
    assert metrics == ['PanopticSegFormerCocoPanopticMetric', 'SemSegMetric']
    assert cfg.test_evaluator == cfg.val_evaluator


@pytest.mark.parametrize('name', sorted(CONFIGS))
def test_data_check_is_on_by_default_and_switchable(name):
    from panseg_plugin.engine.hooks import PanopticDataCheckHook
    cfg = load(name)
    hooks = [h for h in cfg.custom_hooks
             if h['type'] == 'PanopticDataCheckHook']
    assert len(hooks) == 1
    args = {k: v for k, v in hooks[0].items() if k != 'type'}
    assert PanopticDataCheckHook(**args).check_files
    assert not PanopticDataCheckHook(check_files=False).check_files

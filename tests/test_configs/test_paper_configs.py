"""Every config builds; the paper configs match Table 1's parameter counts
and run; the toy config inherits the model and the metainfo."""
import glob
import importlib.util
import os.path as osp

import pytest
import torch
from mmdet.registry import DATASETS, HOOKS, METRICS, TRANSFORMS, VISUALIZERS
from mmengine.config import Config
from mmengine.dataset import Compose
from mmengine.registry import init_default_scope

from panseg_plugin.testing import demo_panoptic_batch
from panseg_plugin.utils.config_helpers import build_model
from toy_panoptic import TOY_METAINFO

ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
CONFIG_DIR = osp.join(ROOT, 'configs', 'panoptic_segformer')
TOY_DIR = osp.join(ROOT, 'projects', 'toy_panoptic', 'configs')
ALL_CONFIGS = sorted(
    osp.relpath(path, ROOT) for path in
    glob.glob(osp.join(CONFIG_DIR, '*.py')) +
    glob.glob(osp.join(TOY_DIR, '*.py')))

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
    return build_model(Config.fromfile(osp.join(CONFIG_DIR, name)))


def _types(node):
    """Every ``type`` in a nested config (pipelines, RandomChoice)."""
    if isinstance(node, dict):
        if 'type' in node:
            yield node['type']
        for value in node.values():
            yield from _types(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            yield from _types(value)


def test_every_config_is_tested():
    names = {osp.basename(path) for path in ALL_CONFIGS}
    assert set(PAPER_PARAMS) <= names
    assert {'panoptic-segformer_r18-tiny_toy-panoptic.py',
            'mask2former_r18-tiny_toy-panoptic.py'} <= names


@pytest.mark.parametrize('path', ALL_CONFIGS)
def test_config_builds_model_pipelines_hooks_and_metrics(path):
    cfg = Config.fromfile(osp.join(ROOT, path))
    if cfg.model.get('encoder', {}).get('num_cp', -1) > 0 and \
            importlib.util.find_spec('fairscale') is None:
        pytest.skip('encoder checkpointing needs fairscale: pip install -r '
                    'requirements/optional.txt')
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    model = build_model(cfg)
    assert sum(p.numel() for p in model.parameters()) > 0
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        dataset = cfg[key].dataset
        assert DATASETS.get(dataset.type) is not None, dataset.type
        pipeline = Compose(dataset.pipeline)
        assert len(pipeline.transforms) == len(dataset.pipeline)
        for name in _types(dataset.pipeline):
            assert TRANSFORMS.get(name) is not None, name
    for key in ('val_evaluator', 'test_evaluator'):
        metrics = cfg[key] if isinstance(cfg[key], list) else [cfg[key]]
        for metric in metrics:
            assert METRICS.get(metric.type) is not None, metric.type
    hooks = list(cfg.default_hooks.values()) + list(cfg.custom_hooks)
    for hook in hooks:
        assert HOOKS.get(hook.type) is not None, hook.type
    assert VISUALIZERS.get(cfg.visualizer.type) is not None


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


def test_paper_configs_state_only_what_differs():
    """The R-50 config is its bases; the others change a few keys."""
    base = Config.fromfile(osp.join(
        CONFIG_DIR, 'panoptic-segformer_r50_8xb1-50e_coco-panoptic.py'))
    assert base.model.type == 'PanopticSegFormer'
    assert base.default_hooks.checkpoint.type == 'AtomicCheckpointHook'
    assert base.model.bbox_head.loss_loc == dict(type='mmdet.L1Loss',
                                                 loss_weight=5.0)
    for name in PAPER_PARAMS:
        with open(osp.join(CONFIG_DIR, name)) as f:
            text = f.read()
        # the head, the training data and the optimiser come from _base_
        for key in ('PanopticSegFormerHead', 'train_pipeline',
                    'optim_wrapper', 'custom_hooks'):
            assert key not in text, f'{name} repeats {key}'


def test_toy_config_inherits_model_and_metainfo():
    path = osp.join(TOY_DIR, 'panoptic-segformer_r18-tiny_toy-panoptic.py')
    cfg = Config.fromfile(path)
    with open(path) as f:
        text = f.read()
    # no copy of the model's types or of the class names
    assert 'PanopticSegFormerHead' not in text and 'circle' not in text
    assert cfg.model.type == 'PanopticSegFormer'
    assert cfg.model.bbox_head.type == 'PanopticSegFormerHead'
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        meta = cfg[loader].dataset.metainfo
        assert {k: tuple(v) for k, v in meta.items()} == {
            k: tuple(v) for k, v in TOY_METAINFO.items()}
    head = cfg.model.bbox_head
    assert (head.num_things_classes, head.num_stuff_classes) == (
        len(TOY_METAINFO['thing_classes']), len(TOY_METAINFO['stuff_classes']))
    model = build_model(cfg)
    assert model.num_queries == 20
    assert model.bbox_head.cls_branch.out_features == 6
    instance = Config.fromfile(
        osp.join(TOY_DIR, 'panoptic-segformer_r18-tiny_toy-instance.py'))
    assert tuple(instance.train_dataloader.dataset.metainfo.classes) == \
        TOY_METAINFO['thing_classes']


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


def test_encoder_cp_config_is_the_r50_model_with_checkpointing():
    base = Config.fromfile(osp.join(
        CONFIG_DIR, 'panoptic-segformer_r50_8xb1-50e_coco-panoptic.py'))
    cp = Config.fromfile(osp.join(
        CONFIG_DIR,
        'panoptic-segformer_r50_encoder-cp_8xb1-50e_coco-panoptic.py'))
    assert cp.model.encoder.pop('num_cp') == 6
    assert cp.model.to_dict() == base.model.to_dict()
    assert cp.train_dataloader.to_dict() == base.train_dataloader.to_dict()
    assert cp.optim_wrapper.to_dict() == base.optim_wrapper.to_dict()

"""PanopticDataCheckHook: data set classes vs. the model's heads."""
import itertools
from types import SimpleNamespace

import pytest
from mmengine.runner import Runner
from torch import nn

from mmdet.registry import HOOKS
# imported for their registration until panseg_plugin imports them
import panseg_plugin.datasets.panoptic_segformer_coco_panoptic  # noqa: F401
from panseg_plugin.engine.hooks.panoptic_data_check_hook import (
    PanopticDataCheckHook, check_panoptic_classes)
from panseg_plugin.testing import tiny_panoptic_segformer_cfg
from toy_panoptic import TOY_METAINFO, make_toy_panoptic

_RUN_IDS = itertools.count()


class Head(nn.Module):

    def __init__(self, num_things_classes, num_stuff_classes):
        super().__init__()
        self.num_things_classes = num_things_classes
        self.num_stuff_classes = num_stuff_classes


class FakeDetector(nn.Module):
    """Only what the hook reads: heads with a thing/stuff split."""

    def __init__(self, num_things=3, num_stuff=3, fusion=None):
        super().__init__()
        self.bbox_head = Head(num_things, num_stuff)
        self.panoptic_fusion_head = Head(*(fusion or (num_things, num_stuff)))


def fake_runner(metainfo, model, mode='train'):
    loader = SimpleNamespace(dataset=SimpleNamespace(metainfo=metainfo))
    return SimpleNamespace(model=model, **{f'{mode}_dataloader': loader})


def test_registered():
    assert HOOKS.get('PanopticDataCheckHook') is \
        PanopticDataCheckHook


def test_matching_classes_pass():
    check_panoptic_classes(TOY_METAINFO, FakeDetector(3, 3))


@pytest.mark.parametrize('model, keys', [
    (FakeDetector(2, 4), 'model.bbox_head and model.panoptic_fusion_head'),
    (FakeDetector(3, 2), 'model.bbox_head and model.panoptic_fusion_head'),
    (FakeDetector(3, 3, (4, 2)),
     'model.bbox_head and model.panoptic_fusion_head'),
], ids=['swapped-counts', 'fewer-stuff', 'fusion-head-only'])
def test_wrong_counts_say_what_to_set(model, keys):
    """The message names the config keys of every head: the detector
    requires them to agree with each other."""
    with pytest.raises(ValueError) as err:
        check_panoptic_classes(TOY_METAINFO, model)
    message = str(err.value)
    assert 'Set num_things_classes=3 and num_stuff_classes=3 in ' + keys \
        in message


def test_stuff_listed_first_is_refused():
    metainfo = dict(TOY_METAINFO, classes=TOY_METAINFO['stuff_classes'] +
                    TOY_METAINFO['thing_classes'])
    with pytest.raises(ValueError, match='thing_classes first') as err:
        check_panoptic_classes(metainfo, FakeDetector(3, 3))
    assert str(TOY_METAINFO['classes']) in str(err.value)


@pytest.mark.parametrize('metainfo, match', [
    (dict(classes=TOY_METAINFO['classes'],
          thing_classes=TOY_METAINFO['thing_classes']),
     'needs classes, thing_classes'),
    (dict(TOY_METAINFO, stuff_classes='sky'), 'write a tuple'),
])
def test_incomplete_metainfo_is_refused(metainfo, match):
    with pytest.raises(ValueError, match=match):
        check_panoptic_classes(metainfo, FakeDetector(3, 3))


def test_instance_data_set_counts_every_class_as_a_thing():
    """A detection data set (CocoDataset: ``classes`` only) for instance
    mode: all classes are things, the model must have no stuff."""
    metainfo = dict(classes=TOY_METAINFO['thing_classes'])
    check_panoptic_classes(metainfo, FakeDetector(3, 0))
    with pytest.raises(ValueError,
                       match='Set num_things_classes=3 and '
                       'num_stuff_classes=0'):
        check_panoptic_classes(metainfo, FakeDetector(3, 3))


def test_model_without_panoptic_heads_is_refused():
    with pytest.raises(ValueError, match='no module with num_things'):
        check_panoptic_classes(TOY_METAINFO, nn.Linear(2, 2))


@pytest.mark.parametrize('mode', ['train', 'val', 'test'])
def test_hook_checks_each_loop_once(mode):
    hook = PanopticDataCheckHook()
    before = getattr(hook, f'before_{mode}')
    with pytest.raises(ValueError, match=f'{mode}_dataloader.dataset'):
        before(fake_runner(TOY_METAINFO, FakeDetector(2, 4), mode))
    runner = fake_runner(TOY_METAINFO, FakeDetector(3, 3), mode)
    before(runner)
    runner.model = FakeDetector(2, 4)
    before(runner)  # checked already: validation every N iterations is free


@pytest.fixture(scope='module')
def toy_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('toy'))
    make_toy_panoptic(root, num_train=2, num_val=1, img_size=32, seed=0)
    return root


def make_runner(work_dir, root, num_things, num_stuff):
    """One-iteration CPU training of the tiny model on the toy set."""
    dataset = dict(
        type='PanopticSegFormerCocoPanopticDataset',
        data_root=root,
        ann_file='annotations/panoptic_train.json',
        data_prefix=dict(img='train/', seg='annotations/panoptic_train/'),
        metainfo=TOY_METAINFO,
        filter_cfg=dict(filter_empty_gt=False),
        pipeline=[
            dict(type='LoadImageFromFile'),
            dict(type='PanopticSegFormerLoadPanopticAnnotations'),
            dict(type='PackDetInputs')
        ])
    return Runner(
        model=tiny_panoptic_segformer_cfg(num_things_classes=num_things,
                                          num_stuff_classes=num_stuff),
        work_dir=str(work_dir),
        train_dataloader=dict(
            dataset=dataset, batch_size=2, num_workers=0,
            sampler=dict(type='InfiniteSampler', shuffle=False),
            collate_fn=dict(type='pseudo_collate')),
        optim_wrapper=dict(optimizer=dict(type='AdamW', lr=1e-4)),
        train_cfg=dict(type='IterBasedTrainLoop', max_iters=1),
        custom_hooks=[dict(type='PanopticDataCheckHook')],
        default_hooks=dict(checkpoint=None),
        default_scope='mmdet',
        experiment_name=f'data_check{next(_RUN_IDS)}')


def test_runner_trains_when_data_and_model_agree(tmp_path, toy_root):
    runner = make_runner(tmp_path, toy_root, 3, 3)
    runner.train()
    assert runner.iter == 1


def test_runner_stops_before_the_first_iteration(tmp_path, toy_root):
    # 2 + 4 = 3 + 3 classes: mmdet's NumClassCheckHook would let this pass
    runner = make_runner(tmp_path, toy_root, 2, 4)
    with pytest.raises(ValueError, match='num_things_classes=3'):
        runner.train()
    assert runner.iter == 0

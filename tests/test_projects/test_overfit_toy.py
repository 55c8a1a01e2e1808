"""The whole loop learns: a tiny Panoptic SegFormer memorises a handful of
toy images (panoptic quality near 100 on the images it trained on).

Every segment must be found with the right class (RQ 100). Segmentation
quality is bounded by the resolution of the masks, 1/8 of the input (8 x 8
cells for these 64 px images, upsampled), hence SQ above 80 for the things
rather than 100.

Data set -> loading -> matching -> losses -> backward -> mask-wise merging
-> mmdet's CocoPanopticMetric: a bug anywhere on that path (a wrong label
order, a mask off by the padding, a sign in a loss) keeps PQ far from 100.
"""
import os.path as osp

import torch
from mmengine.config import Config
from mmengine.runner import Runner

from panseg_plugin.testing import tiny_panoptic_segformer_cfg
from toy_panoptic import make_toy_panoptic

CONFIG = osp.join(osp.dirname(__file__), '..', '..', 'projects',
                  'toy_panoptic', 'configs',
                  'panoptic-segformer_r18-tiny_toy-panoptic.py')
NUM_IMAGES = 4
MAX_ITERS = 300


def overfit_cfg(root, work_dir):
    """The toy config with a tiny model, no augmentation, and the training
    images as the validation set."""
    cfg = Config.fromfile(CONFIG)
    cfg.model = tiny_panoptic_segformer_cfg(
        num_things_classes=3, num_stuff_classes=3, num_queries=12,
        embed_dims=48)
    cfg.model.bbox_head.loss_loc = dict(type='mmdet.L1Loss', loss_weight=1.0)
    train = cfg.train_dataloader
    train.batch_size = NUM_IMAGES
    train.num_workers = 0
    train.persistent_workers = False
    train.dataset.data_root = root
    # no flip: the model is to memorise these very images
    train.dataset.pipeline = [
        step for step in train.dataset.pipeline if step.type != 'RandomFlip'
    ]
    val = cfg.val_dataloader
    val.batch_size = NUM_IMAGES
    val.num_workers = 0
    val.persistent_workers = False
    val.dataset.data_root = root
    val.dataset.ann_file = train.dataset.ann_file
    val.dataset.data_prefix = train.dataset.data_prefix
    cfg.test_dataloader = val
    cfg.test_evaluator = [
        dict(type='PanopticSegFormerCocoPanopticMetric',
             ann_file=osp.join(root, 'annotations', 'panoptic_train.json'),
             seg_prefix=osp.join(root, 'annotations', 'panoptic_train'))
    ]
    cfg.val_evaluator = cfg.test_evaluator
    cfg.optim_wrapper.optimizer.lr = 2e-3
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=MAX_ITERS,
                         val_interval=MAX_ITERS, val_begin=MAX_ITERS + 1)
    cfg.param_scheduler = [
        dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0,
             end=20),
        dict(type='MultiStepLR', by_epoch=False, begin=0, end=MAX_ITERS,
             milestones=[int(MAX_ITERS * 0.8)], gamma=0.1)
    ]
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook',
                                        interval=MAX_ITERS + 1)
    cfg.default_hooks.logger.interval = 50
    cfg.visualizer.pop('name', None)
    cfg.work_dir = work_dir
    cfg.experiment_name = 'overfit_toy'
    cfg.randomness = dict(seed=0)
    return cfg


def test_tiny_model_memorises_a_handful_of_images(tmp_path):
    root = str(tmp_path / 'data')
    make_toy_panoptic(root, num_train=NUM_IMAGES, num_val=1, img_size=64,
                      seed=3, max_instances=2, clutter_ratio=0.0)
    runner = Runner.from_cfg(overfit_cfg(root, str(tmp_path / 'work')))
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        runner.train()
        metrics = runner.test()
    finally:
        torch.set_num_threads(threads)
    assert metrics['coco_panoptic/RQ_th'] == 100, metrics
    assert metrics['coco_panoptic/RQ_st'] == 100, metrics
    assert metrics['coco_panoptic/PQ'] > 90, metrics
    assert metrics['coco_panoptic/SQ_th'] > 80, metrics
    assert metrics['coco_panoptic/SQ_st'] > 95, metrics

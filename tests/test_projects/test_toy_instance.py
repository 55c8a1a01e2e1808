"""Instance mode (things only, CocoDataset, CocoMetric) trains and scores."""
import os.path as osp

import torch
from mmengine.config import Config
from mmengine.runner import Runner

from panseg_plugin.testing import tiny_panoptic_segformer_cfg
from toy_panoptic import make_toy_panoptic

CONFIG = osp.join(osp.dirname(__file__), '..', '..', 'projects',
                  'toy_panoptic', 'configs',
                  'panoptic-segformer_r18-tiny_toy-instance.py')


def test_instance_config_trains_and_reports_mask_ap(tmp_path):
    info = make_toy_panoptic(str(tmp_path / 'data'), num_train=6, num_val=3,
                             img_size=(72, 56), seed=0)
    root = info['data_root'].rstrip('/') + '/'
    cfg = Config.fromfile(CONFIG)
    model = tiny_panoptic_segformer_cfg(num_things_classes=3,
                                        num_stuff_classes=0)
    model['data_preprocessor']['pad_seg'] = False
    model['panoptic_fusion_head'].update(panoptic_on=False, instance_on=True)
    cfg.model = model
    for loader in (cfg.train_dataloader, cfg.val_dataloader):
        loader.dataset.data_root = root
        loader.batch_size = 2
        loader.num_workers = 0
        loader.persistent_workers = False
    cfg.test_dataloader = cfg.val_dataloader
    cfg.val_evaluator[0].ann_file = root + 'annotations/instances_val.json'
    cfg.test_evaluator = cfg.val_evaluator
    cfg.train_cfg.max_iters = 3
    cfg.train_cfg.val_interval = 3
    cfg.param_scheduler = []
    cfg.default_hooks.checkpoint.interval = 3
    cfg.default_hooks.logger.interval = 1
    cfg.visualizer.pop('name', None)
    cfg.work_dir = str(tmp_path / 'work')
    cfg.experiment_name = 'toy_instance'
    cfg.randomness = dict(seed=0)

    runner = Runner.from_cfg(cfg)
    head = runner.model.bbox_head
    assert (head.num_things_classes, head.num_stuff_classes) == (3, 0)
    assert head.cls_branch.out_features == 3
    runner.train()
    metrics = runner.test()

    for kind in ('bbox', 'segm'):
        for suffix in ('', '_50', '_75', '_s', '_m', '_l'):
            assert f'coco/{kind}_mAP{suffix}' in metrics
    assert not any(k.startswith('coco_panoptic') for k in metrics)
    last = torch.load(osp.join(cfg.work_dir, 'iter_3.pth'),
                      map_location='cpu', weights_only=False)
    assert last['meta']['dataset_meta']['classes'] == \
        ('circle', 'triangle', 'square')

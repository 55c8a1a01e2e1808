# COCO panoptic for Panoptic SegFormer: mmdet's data set and loading with
# checks that name the bad file (undecodable images and PNGs, PNG/image size
# or id mismatches, class order), DETR's training augmentation, and PQ plus
# mask AP of the same predictions.
_base_ = [
    'mmdet::_base_/datasets/coco_panoptic.py', './detr_augmentation.py'
]

dataset_type = 'PanopticSegFormerCocoPanopticDataset'
data_root = 'data/coco/'
backend_args = None

train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(
        type='PanopticSegFormerLoadPanopticAnnotations',
        with_bbox=True,
        with_mask=True,
        with_seg=True,
        backend_args=backend_args),
    *_base_.detr_augmentation,
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='Resize', scale=(1333, 800), keep_ratio=True),
    dict(
        type='PanopticSegFormerLoadPanopticAnnotations',
        backend_args=backend_args),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'scale_factor'))
]
train_dataloader = dict(
    batch_size=1,
    num_workers=2,
    dataset=dict(
        type=dataset_type,
        filter_cfg=dict(filter_empty_gt=False, min_size=32),
        pipeline=train_pipeline))
val_dataloader = dict(
    dataset=dict(type=dataset_type, pipeline=test_pipeline))
test_dataloader = val_dataloader

# mmdet's CocoPanopticMetric that leaves the predictions it reads intact and
# reports a defined PQ for a group (things/stuff) without any segment.
val_evaluator = [
    dict(
        type='PanopticSegFormerCocoPanopticMetric',
        ann_file=data_root + 'annotations/panoptic_val2017.json',
        seg_prefix=data_root + 'annotations/panoptic_val2017/',
        backend_args=backend_args),
    dict(
        type='CocoMetric',
        ann_file=data_root + 'annotations/instances_val2017.json',
        metric=['bbox', 'segm'],
        backend_args=backend_args)
]
test_evaluator = val_evaluator

# COCO instance segmentation (things only) for Panoptic SegFormer's
# instance mode: mmdet's data set, loading and CocoMetric, with DETR's
# training augmentation.
_base_ = [
    'mmdet::_base_/datasets/coco_instance.py', './detr_augmentation.py'
]

backend_args = None
train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    *_base_.detr_augmentation,
    dict(type='PackDetInputs')
]
train_dataloader = dict(
    batch_size=1,
    num_workers=2,
    dataset=dict(
        filter_cfg=dict(filter_empty_gt=False, min_size=32),
        pipeline=train_pipeline))

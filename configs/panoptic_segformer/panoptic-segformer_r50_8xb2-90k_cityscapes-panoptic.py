# Panoptic SegFormer, ResNet-50, on Cityscapes panoptic (gtFine: 19
# evaluated classes, 8 things and 11 stuff; 2,975 train and 500 val images
# of 2048x1024), scored by PQ on the converted val set and, from the same
# predictions, mIoU.
#
# mmdet has no Cityscapes panoptic data set or config; the data come from
# cityscapesScripts' createPanopticImgs through
# tools/dataset_converters/cityscapes_panoptic.py (docs/custom_dataset.md,
# "Cityscapes"). The paper reports no Cityscapes recipe, so data and
# schedule follow Mask2Former's Cityscapes panoptic recipe (its detectron2
# release, configs/cityscapes/panoptic-segmentation), the standard one for
# query-based mask models: 16 images a batch, 90k iterations, AdamW at lr
# 1e-4 with weight decay 0.05 and poly decay (power 0.9), the shorter side
# drawn from 512-2048 px (0.5-2x of 1024, longer side <= 4096), a 512x1024
# crop, flip and photometric distortion; tested at 1024x2048. Kept from the
# paper's COCO recipe: the model (its frozen-BN ResNet-50; Mask2Former uses
# SyncBN here), gradient clipping at 0.1 and 0.1x learning rate for the
# backbone, sampling offsets and reference points. Not tuned for this model
# on Cityscapes.
_base_ = [
    '../_base_/models/panoptic-segformer_r50.py',
    '../_base_/default_runtime.py'
]

num_things_classes = 8
num_stuff_classes = 11
model = dict(
    bbox_head=dict(
        num_things_classes=num_things_classes,
        num_stuff_classes=num_stuff_classes),
    panoptic_fusion_head=dict(
        num_things_classes=num_things_classes,
        num_stuff_classes=num_stuff_classes,
        # PQ and mIoU; no instance metric on this data set
        semantic_on=True,
        instance_on=False))

dataset_type = 'PanopticSegFormerCityscapesPanopticDataset'
data_root = 'data/cityscapes/'
backend_args = None
crop_size = (512, 1024)

train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(
        type='PanopticSegFormerLoadPanopticAnnotations',
        with_bbox=True,
        with_mask=True,
        with_seg=True,
        backend_args=backend_args),
    dict(
        type='RandomChoiceResize',
        scales=[(4096, 1024 * i // 10) for i in range(5, 21)],
        keep_ratio=True),
    dict(
        type='RandomCrop',
        crop_size=crop_size,
        crop_type='absolute',
        recompute_bbox=True,
        allow_negative_crop=True),
    dict(
        type='FilterAnnotations',
        min_gt_bbox_wh=(1e-5, 1e-5),
        by_mask=True,
        keep_empty=False),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='Resize', scale=(2048, 1024), keep_ratio=True),
    dict(
        type='PanopticSegFormerLoadPanopticAnnotations',
        backend_args=backend_args),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'scale_factor'))
]
train_dataloader = dict(
    batch_size=2,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='gtFine/cityscapes_panoptic_train.json',
        data_prefix=dict(
            img='leftImg8bit/train/', seg='gtFine/cityscapes_panoptic_train/'),
        filter_cfg=dict(filter_empty_gt=False),
        pipeline=train_pipeline,
        backend_args=backend_args))
val_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='gtFine/cityscapes_panoptic_val.json',
        data_prefix=dict(
            img='leftImg8bit/val/', seg='gtFine/cityscapes_panoptic_val/'),
        test_mode=True,
        pipeline=test_pipeline,
        backend_args=backend_args))
test_dataloader = val_dataloader

val_evaluator = [
    dict(
        type='PanopticSegFormerCocoPanopticMetric',
        ann_file=data_root + 'gtFine/cityscapes_panoptic_val.json',
        seg_prefix=data_root + 'gtFine/cityscapes_panoptic_val/',
        backend_args=backend_args),
    dict(type='SemSegMetric', iou_metrics=['mIoU'], prefix='sem_seg')
]
test_evaluator = val_evaluator

max_iters = 90000
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, weight_decay=0.05),
    clip_grad=dict(max_norm=0.1, norm_type=2),
    paramwise_cfg=dict(
        custom_keys={
            'backbone': dict(lr_mult=0.1),
            'sampling_offsets': dict(lr_mult=0.1),
            'reference_points': dict(lr_mult=0.1)
        }))
param_scheduler = [
    dict(
        type='PolyLR',
        eta_min=0,
        power=0.9,
        begin=0,
        end=max_iters,
        by_epoch=False)
]
train_cfg = dict(
    type='IterBasedTrainLoop', max_iters=max_iters, val_interval=5000)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    checkpoint=dict(
        by_epoch=False,
        interval=5000,
        max_keep_ckpts=3,
        save_best='coco_panoptic/PQ',
        rule='greater'))
log_processor = dict(by_epoch=False)
# 8 GPUs x 2 images
auto_scale_lr = dict(enable=False, base_batch_size=16)

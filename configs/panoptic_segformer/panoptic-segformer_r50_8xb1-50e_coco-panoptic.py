# Panoptic SegFormer, ResNet-50, 50 epochs on COCO panoptic (paper Table 1:
# PQ 50.0, 47.0M parameters, 246 GFLOPs at 1200x800).
_base_ = [
    'mmdet::_base_/datasets/coco_panoptic.py',
    'mmdet::_base_/default_runtime.py'
]
custom_imports = dict(imports=['panseg_plugin'], allow_failed_imports=False)

num_things_classes = 80
num_stuff_classes = 53
num_queries = 400
embed_dims = 256

model = dict(
    type='PanopticSegFormer',
    num_queries=num_queries,
    num_feature_levels=4,
    data_preprocessor=dict(
        type='DetDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True,
        pad_size_divisor=32,
        pad_mask=True,
        mask_pad_value=0,
        pad_seg=True,
        seg_pad_value=255),
    backbone=dict(
        type='ResNet',
        depth=50,
        num_stages=4,
        out_indices=(1, 2, 3),
        frozen_stages=1,
        norm_cfg=dict(type='BN', requires_grad=False),
        norm_eval=True,
        style='pytorch',
        init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet50')),
    neck=dict(
        type='ChannelMapper',
        in_channels=[512, 1024, 2048],
        kernel_size=1,
        out_channels=embed_dims,
        act_cfg=None,
        norm_cfg=dict(type='GN', num_groups=32),
        num_outs=4),
    encoder=dict(  # mmdet DeformableDetrTransformerEncoder
        num_layers=6,
        layer_cfg=dict(
            self_attn_cfg=dict(  # mmcv MultiScaleDeformableAttention
                embed_dims=embed_dims, num_heads=8, num_levels=4,
                num_points=4, batch_first=True),
            ffn_cfg=dict(
                embed_dims=embed_dims, feedforward_channels=1024,
                ffn_drop=0.1))),
    decoder=dict(  # location decoder: mmdet DeformableDetrTransformerDecoder
        num_layers=6,
        return_intermediate=True,
        layer_cfg=dict(
            self_attn_cfg=dict(
                embed_dims=embed_dims, num_heads=8, dropout=0.1,
                batch_first=True),
            cross_attn_cfg=dict(
                embed_dims=embed_dims, num_heads=8, num_levels=4,
                num_points=4, batch_first=True),
            ffn_cfg=dict(
                embed_dims=embed_dims, feedforward_channels=1024,
                ffn_drop=0.1)),
        post_norm_cfg=None),
    positional_encoding=dict(
        num_feats=embed_dims // 2, normalize=True, offset=-0.5),
    bbox_head=dict(
        type='PanopticSegFormerHead',
        num_things_classes=num_things_classes,
        num_stuff_classes=num_stuff_classes,
        embed_dims=embed_dims,
        num_mask_levels=3,
        mask_decoder=dict(
            num_layers=4, num_heads=8, feedforward_channels=2048,
            dropout=0.1, with_self_attn=True),
        deep_supervision=True,
        loss_cls=dict(
            type='mmdet.FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25,
            loss_weight=1.0),
        loss_mask=dict(
            type='mmdet.DiceLoss', use_sigmoid=True, activate=True,
            naive_dice=False, loss_weight=1.0),
        loss_loc=dict(type='PanopticSegFormerLocationLoss', loss_weight=5.0)),
    panoptic_fusion_head=dict(
        type='PanopticSegFormerFusionHead',
        num_things_classes=num_things_classes,
        num_stuff_classes=num_stuff_classes,
        score_thr=0.3,
        mask_thr=0.5,
        max_per_image=100),
    train_cfg=dict(
        assigner=dict(
            type='PanopticSegFormerAssigner',
            match_costs=[
                dict(type='mmdet.FocalLossCost', weight=1.0),
                dict(type='mmdet.DiceCost', weight=1.0, pred_act=True,
                     naive_dice=False)
            ])),
    test_cfg=dict())

# mmdet's COCO panoptic data set and loading, with checks that name the bad
# file (corrupt images/PNGs, PNG/image size or id mismatches, class order).
dataset_type = 'PanopticSegFormerCocoPanopticDataset'

# Multi-scale training: short side 480-800, long side at most 1333.
train_pipeline = [
    dict(
        type='PanopticSegFormerLoadImageFromFile',
        backend_args={{_base_.backend_args}}),
    dict(
        type='PanopticSegFormerLoadPanopticAnnotations',
        with_bbox=True,
        with_mask=True,
        with_seg=True,
        backend_args={{_base_.backend_args}}),
    dict(type='RandomFlip', prob=0.5),
    dict(
        type='RandomChoiceResize',
        scales=[(1333, short) for short in range(480, 801, 32)],
        keep_ratio=True),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(
        type='PanopticSegFormerLoadImageFromFile',
        backend_args={{_base_.backend_args}}),
    dict(type='Resize', scale=(1333, 800), keep_ratio=True),
    dict(
        type='PanopticSegFormerLoadPanopticAnnotations',
        backend_args={{_base_.backend_args}}),
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

data_root = 'data/coco/'
# mmdet's CocoPanopticMetric that leaves the predictions it reads intact and
# reports a defined PQ for a group (things/stuff) without any segment.
val_evaluator = [
    dict(
        type='PanopticSegFormerCocoPanopticMetric',
        ann_file=data_root + 'annotations/panoptic_val2017.json',
        seg_prefix=data_root + 'annotations/panoptic_val2017/',
        backend_args={{_base_.backend_args}}),
    dict(
        type='CocoMetric',
        ann_file=data_root + 'annotations/instances_val2017.json',
        metric=['bbox', 'segm'],
        backend_args={{_base_.backend_args}})
]
test_evaluator = val_evaluator

# AdamW, lr 1.8e-4 for 8 images; backbone (and, as in Deformable DETR,
# sampling offsets and reference points) at 0.1x; gradient clipping.
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1.8e-4, weight_decay=1e-4),
    clip_grad=dict(max_norm=0.1, norm_type=2),
    paramwise_cfg=dict(
        custom_keys={
            'backbone': dict(lr_mult=0.1),
            'sampling_offsets': dict(lr_mult=0.1),
            'reference_points': dict(lr_mult=0.1)
        }))

max_epochs = 50
train_cfg = dict(
    type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=1)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
param_scheduler = [
    dict(
        type='MultiStepLR',
        begin=0,
        end=max_epochs,
        by_epoch=True,
        milestones=[40],
        gamma=0.1)
]
# Crash-safe checkpoints (an interrupted save never leaves last_checkpoint
# on a half-written file), exact resume of the random generators, and a
# check of the data set's thing/stuff classes against the model.
default_hooks = dict(
    checkpoint=dict(
        type='PanopticSegFormerCheckpointHook', interval=1, max_keep_ckpts=3,
        save_best='coco_panoptic/PQ', rule='greater'))
custom_hooks = [
    dict(type='PanopticSegFormerDataCheckHook'),
    dict(type='PanopticSegFormerResumeStateHook')
]
# 8 GPUs x 1 image per GPU
auto_scale_lr = dict(enable=False, base_batch_size=8)
# mmdet's DetLocalVisualizer, safe on predictions without any segment
visualizer = dict(
    type='PanopticSegFormerVisualizer',
    vis_backends=[dict(type='LocalVisBackend')],
    name='visualizer')

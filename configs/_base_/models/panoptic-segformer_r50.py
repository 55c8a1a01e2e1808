# Panoptic SegFormer (paper section 3) with a ResNet-50: Deformable DETR's
# encoder and location decoder (mmdet's), then the mask decoder and
# mask-wise merging of the plugin; COCO panoptic's 80 things and 53 stuff
# classes, 400 queries, 256-dim transformer, 4 feature levels, masks from 3.
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
        # every mask-decoder layer's class and mask losses summed, the
        # location loss once: 4 : 4 : 5 with 4 layers, as the authors' code
        # ('mean' gives Eq. 3's 1 : 1 : 5)
        deep_supervision_reduction='sum',
        loss_cls=dict(
            type='mmdet.FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25,
            loss_weight=1.0),
        loss_mask=dict(
            type='mmdet.DiceLoss', use_sigmoid=True, activate=True,
            naive_dice=False, loss_weight=1.0),
        loss_loc=dict(type='mmdet.L1Loss', loss_weight=5.0)),
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

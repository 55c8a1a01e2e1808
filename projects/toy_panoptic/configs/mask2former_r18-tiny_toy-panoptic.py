# mmdet's Mask2Former at the size class of the toy Panoptic SegFormer (same
# ResNet-18 from the same pretrained weights, 64-dim transformer, 20
# queries) on the same data with the same schedule, optimiser and batch:
# the baseline of projects/toy_panoptic/benchmark_mask2former.py.
_base_ = './panoptic-segformer_r18-tiny_toy-panoptic.py'

embed_dims = 64
model = dict(
    _delete_=True,
    type='Mask2Former',
    data_preprocessor=dict(
        type='DetDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True,
        pad_size_divisor=32,
        pad_mask=True,
        pad_seg=True,
        seg_pad_value=255),
    backbone=dict(
        type='ResNet',
        depth=18,
        base_channels=32,
        num_stages=4,
        out_indices=(0, 1, 2, 3),
        norm_cfg=dict(type='BN', requires_grad=True),
        norm_eval=False,
        style='pytorch',
        init_cfg=dict(type='Pretrained',
                      checkpoint={{_base_.pretrained_backbone}})),
    panoptic_head=dict(
        type='Mask2FormerHead',
        in_channels=[32, 64, 128, 256],
        strides=[4, 8, 16, 32],
        feat_channels=embed_dims,
        out_channels=embed_dims,
        num_things_classes=3,
        num_stuff_classes=3,
        num_queries=20,
        num_transformer_feat_level=3,
        pixel_decoder=dict(
            type='MSDeformAttnPixelDecoder',
            num_outs=3,
            norm_cfg=dict(type='GN', num_groups=16),
            act_cfg=dict(type='ReLU'),
            encoder=dict(
                num_layers=2,
                layer_cfg=dict(
                    self_attn_cfg=dict(
                        embed_dims=embed_dims, num_heads=4, num_levels=3,
                        num_points=4, dropout=0.0, batch_first=True),
                    ffn_cfg=dict(
                        embed_dims=embed_dims, feedforward_channels=256,
                        num_fcs=2, ffn_drop=0.0,
                        act_cfg=dict(type='ReLU', inplace=True)))),
            positional_encoding=dict(num_feats=embed_dims // 2,
                                     normalize=True)),
        enforce_decoder_input_project=False,
        positional_encoding=dict(num_feats=embed_dims // 2, normalize=True),
        transformer_decoder=dict(
            return_intermediate=True,
            num_layers=3,
            layer_cfg=dict(
                self_attn_cfg=dict(embed_dims=embed_dims, num_heads=4,
                                   dropout=0.0, batch_first=True),
                cross_attn_cfg=dict(embed_dims=embed_dims, num_heads=4,
                                    dropout=0.0, batch_first=True),
                ffn_cfg=dict(
                    embed_dims=embed_dims, feedforward_channels=256,
                    num_fcs=2, ffn_drop=0.0,
                    act_cfg=dict(type='ReLU', inplace=True))),
            init_cfg=None),
        loss_cls=dict(
            type='CrossEntropyLoss', use_sigmoid=False, loss_weight=2.0,
            reduction='mean', class_weight=[1.0] * 6 + [0.1]),
        loss_mask=dict(
            type='CrossEntropyLoss', use_sigmoid=True, reduction='mean',
            loss_weight=5.0),
        loss_dice=dict(
            type='DiceLoss', use_sigmoid=True, activate=True,
            reduction='mean', naive_dice=True, eps=1.0, loss_weight=5.0)),
    panoptic_fusion_head=dict(
        type='MaskFormerFusionHead',
        num_things_classes=3,
        num_stuff_classes=3,
        loss_panoptic=None,
        init_cfg=None),
    train_cfg=dict(
        num_points=1024,
        oversample_ratio=3.0,
        importance_sample_ratio=0.75,
        assigner=dict(
            type='HungarianAssigner',
            match_costs=[
                dict(type='ClassificationCost', weight=2.0),
                dict(type='CrossEntropyLossCost', weight=5.0,
                     use_sigmoid=True),
                dict(type='DiceCost', weight=5.0, pred_act=True, eps=1.0)
            ]),
        sampler=dict(type='MaskPseudoSampler')),
    test_cfg=dict(
        panoptic_on=True,
        semantic_on=False,
        instance_on=True,
        max_per_image=20,
        iou_thr=0.8,
        filter_low_score=True),
    init_cfg=None)
# the toy data's checks stay; the class-count hook reads Panoptic
# SegFormer's head and does not apply here
custom_hooks = []

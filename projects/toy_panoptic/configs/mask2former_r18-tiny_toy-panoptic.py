# mmdet's Mask2Former at the size class of the toy Panoptic SegFormer (same
# ResNet-18 from the same pretrained weights, 64-dim transformer, 20
# queries) on the same data with the same schedule, optimiser and batch:
# the baseline of projects/toy_panoptic/benchmark_mask2former.py.
_base_ = './panoptic-segformer_r18-tiny_toy-panoptic.py'

embed_dims = 64
num_things_classes = _base_.num_things_classes
num_stuff_classes = _base_.num_stuff_classes
num_classes = num_things_classes + num_stuff_classes
model = dict(
    _delete_=True,
    type='Mask2Former',
    # the toy Panoptic SegFormer's preprocessing and backbone (with its
    # pretrained weights), reading one more stage (stride 4)
    data_preprocessor=_base_.model.data_preprocessor,
    backbone=dict(_base_.model.backbone, out_indices=(0, 1, 2, 3)),
    panoptic_head=dict(
        type='Mask2FormerHead',
        in_channels=[32, 64, 128, 256],
        strides=[4, 8, 16, 32],
        feat_channels=embed_dims,
        out_channels=embed_dims,
        num_things_classes=num_things_classes,
        num_stuff_classes=num_stuff_classes,
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
            reduction='mean', class_weight=[1.0] * num_classes + [0.1]),
        loss_mask=dict(
            type='CrossEntropyLoss', use_sigmoid=True, reduction='mean',
            loss_weight=5.0),
        loss_dice=dict(
            type='DiceLoss', use_sigmoid=True, activate=True,
            reduction='mean', naive_dice=True, eps=1.0, loss_weight=5.0)),
    panoptic_fusion_head=dict(
        type='MaskFormerFusionHead',
        num_things_classes=num_things_classes,
        num_stuff_classes=num_stuff_classes,
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

# The base config's test-time augmentation is Panoptic SegFormer v1's
# (PanopticSegFormerTTAModel); this model has none.
tta_model = None
tta_pipeline = None

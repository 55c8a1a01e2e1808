# The authors' released Panoptic SegFormer R-50 2x (CVPR'22 architecture):
# 300 thing queries with a box-refining location decoder, 53 stuff queries,
# separate thing/stuff mask decoders. Released weights: PQ 49.6 on COCO val
# (their number). Data, evaluation and hooks come from the v1 config; the
# model, the test-time padding and the schedule are the release's.
_base_ = './panoptic-segformer_r50_8xb1-50e_coco-panoptic.py'

num_things_classes = 80
num_stuff_classes = 53
embed_dims = 256

model = dict(
    _delete_=True,
    type='PanopticSegFormerCVPR22',
    num_queries=300,
    num_feature_levels=4,
    with_box_refine=True,
    as_two_stage=False,
    # the v1 model's preprocessor (the release pads to no multiple),
    # ResNet-50 and ChannelMapper, unchanged
    data_preprocessor=dict(_base_.model.data_preprocessor,
                           pad_size_divisor=1),
    backbone=_base_.model.backbone,
    neck=_base_.model.neck,
    encoder=dict(  # mmdet DeformableDetrTransformerEncoder
        num_layers=6,
        layer_cfg=dict(
            self_attn_cfg=dict(embed_dims=embed_dims, batch_first=True),
            ffn_cfg=dict(
                embed_dims=embed_dims, feedforward_channels=1024,
                ffn_drop=0.1))),
    decoder=dict(  # location decoder, iterative box refinement
        num_layers=6,
        return_intermediate=True,
        layer_cfg=dict(
            self_attn_cfg=dict(
                embed_dims=embed_dims, num_heads=8, dropout=0.1,
                batch_first=True),
            cross_attn_cfg=dict(embed_dims=embed_dims, batch_first=True),
            ffn_cfg=dict(
                embed_dims=embed_dims, feedforward_channels=1024,
                ffn_drop=0.1)),
        post_norm_cfg=None),
    positional_encoding=dict(
        num_feats=embed_dims // 2, normalize=True, offset=-0.5),
    bbox_head=dict(
        type='PanopticSegFormerCVPR22Head',
        num_classes=num_things_classes,
        num_stuff_classes=num_stuff_classes,
        embed_dims=embed_dims,
        sync_cls_avg_factor=True,
        num_mask_levels=3,
        num_thing_candidates=100,
        things_mask_decoder=dict(
            num_layers=4, num_heads=8, feedforward_channels=1024,
            with_self_attn=False),
        stuff_mask_decoder=dict(
            num_layers=6, num_heads=8, feedforward_channels=1024,
            with_self_attn=True),
        loss_cls=dict(
            type='FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25,
            loss_weight=2.0),
        loss_bbox=dict(type='L1Loss', loss_weight=5.0),
        loss_iou=dict(type='GIoULoss', loss_weight=2.0),
        loss_mask=dict(
            type='DiceLoss', use_sigmoid=False, activate=False,
            naive_dice=False, eps=1e-6, loss_weight=2.0),
        # the release's focal weight 2 times its hard-coded factor 2
        loss_stuff_cls=dict(
            type='FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25,
            loss_weight=4.0),
        # 1 Hungarian round: what the authors' filter does (configured for
        # 3, its loop stops after the first); 3 for their intent
        query_filter_rounds=1),
    panoptic_fusion_head=dict(
        type='PanopticSegFormerCVPR22FusionHead',
        num_things_classes=num_things_classes,
        num_stuff_classes=num_stuff_classes,
        quality_thr_things=0.25,
        quality_thr_stuff=0.25,
        overlap_thr_things=0.4,
        overlap_thr_stuff=0.2,
        mask_thr=0.5,
        mask_quality_power=2.0),
    train_cfg=dict(
        assigner=dict(
            type='HungarianAssigner',
            match_costs=[
                dict(type='FocalLossCost', weight=2.0),
                dict(type='BBoxL1Cost', weight=5.0, box_format='xywh'),
                dict(type='IoUCost', iou_mode='giou', weight=2.0)
            ]),
        # matching of the filtered queries to the things, with masks; the
        # class cost is the config's 2 doubled, as the authors' assigner
        mask_assigner=dict(
            type='HungarianAssigner',
            match_costs=[
                dict(type='FocalLossCost', weight=4.0),
                dict(type='BBoxL1Cost', weight=5.0, box_format='xywh'),
                dict(type='IoUCost', iou_mode='giou', weight=2.0),
                dict(type='PanopticSegFormerCVPR22DiceCost', weight=2.0)
            ])),
    test_cfg=dict(max_per_img=100))

# AdamW, lr 1.4e-4 for 8 images, 0.1x for the backbone, the sampling offsets
# and the reference points, gradient clipping at 0.1 (the release's recipe).
optim_wrapper = dict(optimizer=dict(lr=1.4e-4))

max_epochs = 24
train_cfg = dict(max_epochs=max_epochs)
param_scheduler = [
    dict(
        type='MultiStepLR',
        begin=0,
        end=max_epochs,
        by_epoch=True,
        milestones=[18],
        gamma=0.1)
]

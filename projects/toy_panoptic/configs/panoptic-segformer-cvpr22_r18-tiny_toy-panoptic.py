# The released (CVPR'22) architecture at the size of the toy recipe, for an
# equal-budget comparison with the v1 toy model and mmdet's Mask2Former
# (this project): the same data, ResNet-18 backbone (and its
# pretrained file), neck, 64-dim transformer with 2 encoder and 2
# location-decoder layers (box refinement), 20 thing queries plus one query
# per stuff class, 2-block thing and stuff mask decoders, the release's
# losses, matching and merging thresholds, and the toy schedule.
#     python projects/toy_panoptic/quickstart.py --config THIS_FILE \
#         --work-dir work_dirs/toy_panoptic_cvpr22
_base_ = './panoptic-segformer_r18-tiny_toy-panoptic.py'

num_things_classes = len(_base_.metainfo.thing_classes)
num_stuff_classes = len(_base_.metainfo.stuff_classes)
embed_dims = 64
num_levels = 3
num_queries = 20

attn = dict(embed_dims=embed_dims, num_heads=4, num_levels=num_levels,
            batch_first=True)
ffn = dict(embed_dims=embed_dims, feedforward_channels=256, ffn_drop=0.0)
mask_decoder = dict(num_heads=4, feedforward_channels=256, num_layers=2)
model = dict(
    _delete_=True,
    type='PanopticSegFormerCVPR22',
    num_queries=num_queries,
    num_feature_levels=num_levels,
    with_box_refine=True,
    as_two_stage=False,
    data_preprocessor=_base_.model.data_preprocessor,
    backbone=_base_.model.backbone,
    neck=_base_.model.neck,
    encoder=dict(num_layers=2, layer_cfg=dict(self_attn_cfg=attn,
                                              ffn_cfg=ffn)),
    decoder=dict(
        num_layers=2,
        return_intermediate=True,
        layer_cfg=dict(
            self_attn_cfg=dict(embed_dims=embed_dims, num_heads=4,
                               dropout=0.0, batch_first=True),
            cross_attn_cfg=attn,
            ffn_cfg=ffn),
        post_norm_cfg=None),
    positional_encoding=dict(num_feats=embed_dims // 2, normalize=True,
                             offset=-0.5),
    bbox_head=dict(
        type='PanopticSegFormerCVPR22Head',
        num_classes=num_things_classes,
        num_stuff_classes=num_stuff_classes,
        embed_dims=embed_dims,
        sync_cls_avg_factor=True,
        num_mask_levels=num_levels,
        num_thing_candidates=num_queries,
        things_mask_decoder=dict(mask_decoder, with_self_attn=False),
        stuff_mask_decoder=dict(mask_decoder, with_self_attn=True),
        loss_cls=dict(type='FocalLoss', use_sigmoid=True, gamma=2.0,
                      alpha=0.25, loss_weight=2.0),
        loss_bbox=dict(type='L1Loss', loss_weight=5.0),
        loss_iou=dict(type='GIoULoss', loss_weight=2.0),
        loss_mask=dict(type='DiceLoss', use_sigmoid=False, activate=False,
                       naive_dice=False, eps=1e-6, loss_weight=2.0),
        loss_stuff_cls=dict(type='FocalLoss', use_sigmoid=True, gamma=2.0,
                            alpha=0.25, loss_weight=4.0),
        query_filter_rounds=1),
    panoptic_fusion_head=dict(
        type='PanopticSegFormerCVPR22FusionHead',
        num_things_classes=num_things_classes,
        num_stuff_classes=num_stuff_classes,
        quality_thr_things=0.25,
        quality_thr_stuff=0.25,
        overlap_thr_things=0.4,
        overlap_thr_stuff=0.2),
    train_cfg=dict(
        assigner=dict(
            type='HungarianAssigner',
            match_costs=[
                dict(type='FocalLossCost', weight=2.0),
                dict(type='BBoxL1Cost', weight=5.0, box_format='xywh'),
                dict(type='IoUCost', iou_mode='giou', weight=2.0)
            ]),
        mask_assigner=dict(
            type='HungarianAssigner',
            match_costs=[
                dict(type='FocalLossCost', weight=4.0),
                dict(type='BBoxL1Cost', weight=5.0, box_format='xywh'),
                dict(type='IoUCost', iou_mode='giou', weight=2.0),
                dict(type='PanopticSegFormerCVPR22DiceCost', weight=2.0)
            ])),
    test_cfg=dict(max_per_img=num_queries))

# The base config's test-time augmentation is Panoptic SegFormer v1's
# (PanopticSegFormerTTAModel); this model has none.
tta_model = None
tta_pipeline = None

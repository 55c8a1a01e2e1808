# The authors' released PVTv2-B5 2x (PQ 55.6 on COCO val, their number), as
# mmdet's PyramidVisionTransformerV2; their backbone keys are converted by
# mmdet's pvt_convert. Their merging thresholds are 0.3 for this model.
_base_ = './panoptic-segformer-cvpr22_r50_8xb1-24e_coco-panoptic.py'

model = dict(
    backbone=dict(
        _delete_=True,
        type='PyramidVisionTransformerV2',
        embed_dims=64,
        num_layers=[3, 6, 40, 3],
        num_heads=[1, 2, 5, 8],
        mlp_ratios=(4, 4, 4, 4),
        sr_ratios=[8, 4, 2, 1],
        qkv_bias=True,
        drop_path_rate=0.1,
        out_indices=(1, 2, 3),
        # the authors start from the ImageNet-22K weights of PVTv2-B5
        init_cfg=dict(
            type='Pretrained',
            checkpoint='https://github.com/whai362/PVT/releases/download/v2/pvt_v2_b5_22k.pth')),  # noqa
    neck=dict(in_channels=[128, 320, 512]),
    panoptic_fusion_head=dict(quality_thr_things=0.3, quality_thr_stuff=0.3))

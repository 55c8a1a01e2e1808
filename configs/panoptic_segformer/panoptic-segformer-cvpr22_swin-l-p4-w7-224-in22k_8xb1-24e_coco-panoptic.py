# The authors' released Swin-L 2x (window 7, ImageNet-22K; PQ 55.8 on COCO
# val, their number), as mmdet's SwinTransformer; their backbone keys are
# converted by mmdet's swin_converter. Their merging thresholds are 0.3 for
# this model.
_base_ = './panoptic-segformer-cvpr22_r50_8xb1-24e_coco-panoptic.py'

model = dict(
    backbone=dict(
        _delete_=True,
        type='SwinTransformer',
        pretrain_img_size=224,
        embed_dims=192,
        depths=[2, 2, 18, 2],
        num_heads=[6, 12, 24, 48],
        window_size=7,
        mlp_ratio=4,
        qkv_bias=True,
        qk_scale=None,
        drop_rate=0.,
        attn_drop_rate=0.,
        drop_path_rate=0.3,
        patch_norm=True,
        out_indices=(1, 2, 3),
        with_cp=False,
        convert_weights=True,
        init_cfg=dict(
            type='Pretrained',
            checkpoint='https://github.com/SwinTransformer/storage/releases/download/v1.0.0/swin_large_patch4_window7_224_22k.pth')),  # noqa
    neck=dict(in_channels=[384, 768, 1536]),
    panoptic_fusion_head=dict(quality_thr_things=0.3, quality_thr_stuff=0.3))

# PVTv2-B2 on ADE20K panoptic: the recipe of the ResNet-50 config, with the
# backbone of the COCO PVTv2-B2 config (ImageNet-1K weights from the
# official PVT release, converted by mmdet's pvt_convert).
_base_ = './panoptic-segformer_r50_8xb2-160k_ade20k-panoptic.py'

model = dict(
    backbone=dict(
        _delete_=True,
        type='PyramidVisionTransformerV2',
        embed_dims=64,
        num_layers=[3, 4, 6, 3],
        out_indices=(1, 2, 3),
        init_cfg=dict(
            type='Pretrained',
            checkpoint='https://github.com/whai362/PVT/releases/download/v2/pvt_v2_b2.pth')),  # noqa: E501
    neck=dict(in_channels=[128, 320, 512]))

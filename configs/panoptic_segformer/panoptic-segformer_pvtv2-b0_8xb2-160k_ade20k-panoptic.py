# PVTv2-B0 on ADE20K panoptic: the recipe of the ResNet-50 config, with the
# backbone of the COCO PVTv2-B0 config (ImageNet-1K weights from the
# official PVT release, converted by mmdet's pvt_convert).
_base_ = './panoptic-segformer_r50_8xb2-160k_ade20k-panoptic.py'

model = dict(
    backbone=dict(
        _delete_=True,
        type='PyramidVisionTransformerV2',
        embed_dims=32,
        num_layers=[2, 2, 2, 2],
        out_indices=(1, 2, 3),
        init_cfg=dict(
            type='Pretrained',
            checkpoint='https://github.com/whai362/PVT/releases/download/v2/pvt_v2_b0.pth')),  # noqa: E501
    neck=dict(in_channels=[64, 160, 256]))

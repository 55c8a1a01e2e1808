# PVTv2-B0 (paper Table 1: PQ 49.6, 22.2M parameters, 156 GFLOPs), ImageNet-1K
# weights from the official PVT release, converted by mmdet's pvt_convert.
_base_ = './panoptic-segformer_r50_8xb1-50e_coco-panoptic.py'

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

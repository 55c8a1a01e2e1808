# PVTv2-B2 (paper Table 1: PQ 52.6, 41.6M parameters, 219 GFLOPs), ImageNet-1K
# weights from the official PVT release, converted by mmdet's pvt_convert.
_base_ = './panoptic-segformer_pvtv2-b0_8xb1-50e_coco-panoptic.py'

model = dict(
    backbone=dict(
        embed_dims=64,
        num_layers=[3, 4, 6, 3],
        init_cfg=dict(
            checkpoint='https://github.com/whai362/PVT/releases/download/v2/pvt_v2_b2.pth')),  # noqa: E501
    neck=dict(in_channels=[128, 320, 512]))

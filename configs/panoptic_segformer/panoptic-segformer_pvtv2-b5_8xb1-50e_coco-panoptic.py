# PVTv2-B5 (paper Table 1: PQ 54.1, 100.9M parameters, 391 GFLOPs), ImageNet-1K
# weights from the official PVT release, converted by mmdet's pvt_convert.
_base_ = './panoptic-segformer_pvtv2-b2_8xb1-50e_coco-panoptic.py'

model = dict(
    backbone=dict(
        num_layers=[3, 6, 40, 3],
        mlp_ratios=(4, 4, 4, 4),
        init_cfg=dict(
            checkpoint='https://github.com/whai362/PVT/releases/download/v2/pvt_v2_b5.pth')))  # noqa: E501

# ResNet-101 (paper Table 1: PQ 50.4, 65.9M parameters, 322 GFLOPs).
_base_ = './panoptic-segformer_r50_8xb1-50e_coco-panoptic.py'

model = dict(
    backbone=dict(
        depth=101,
        init_cfg=dict(type='Pretrained',
                      checkpoint='torchvision://resnet101')))

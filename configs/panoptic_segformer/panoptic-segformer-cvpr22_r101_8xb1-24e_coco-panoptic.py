# The authors' released R-101 2x (PQ 50.6 on COCO val, their number).
_base_ = './panoptic-segformer-cvpr22_r50_8xb1-24e_coco-panoptic.py'

model = dict(
    backbone=dict(
        depth=101,
        init_cfg=dict(type='Pretrained',
                      checkpoint='torchvision://resnet101')))

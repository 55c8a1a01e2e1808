# The authors' released R-50 1x (PQ 48.0 on COCO val, their number):
# 12 epochs, lr x0.1 after epoch 8.
_base_ = './panoptic-segformer-cvpr22_r50_8xb1-24e_coco-panoptic.py'

max_epochs = 12
train_cfg = dict(max_epochs=max_epochs)
param_scheduler = [
    dict(
        type='MultiStepLR',
        begin=0,
        end=max_epochs,
        by_epoch=True,
        milestones=[8],
        gamma=0.1)
]

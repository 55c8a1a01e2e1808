# 1x schedule (paper Table 1: PQ 46.4): 12 epochs, lr x0.1 after epoch 8.
_base_ = './panoptic-segformer_r50_8xb1-50e_coco-panoptic.py'

max_epochs = 12
train_cfg = dict(max_epochs=max_epochs)
param_scheduler = [
    dict(_base_.param_scheduler[0], end=max_epochs, milestones=[8])
]

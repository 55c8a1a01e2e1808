# Instance segmentation mode (paper Table 3: 41.7 mask AP on test-dev):
# the same model trained on things only, with 300 queries, evaluated with
# mmdet's CocoMetric (segm, and bbox from the masks).
_base_ = [
    '../_base_/models/panoptic-segformer_r50.py',
    '../_base_/datasets/coco_instance.py',
    '../_base_/schedules/schedule_50e.py', '../_base_/default_runtime.py'
]

num_things_classes = 80
num_stuff_classes = 0
model = dict(
    num_queries=300,
    data_preprocessor=dict(pad_seg=False),
    bbox_head=dict(
        num_things_classes=num_things_classes,
        num_stuff_classes=num_stuff_classes),
    panoptic_fusion_head=dict(
        num_things_classes=num_things_classes,
        num_stuff_classes=num_stuff_classes,
        panoptic_on=False,
        instance_on=True))

default_hooks = dict(
    checkpoint=dict(save_best='coco/segm_mAP', rule='greater'))

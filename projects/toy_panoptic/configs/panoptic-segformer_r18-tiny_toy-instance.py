# Instance segmentation mode on the toy set (paper Table 3's recipe at toy
# size): the same small Panoptic SegFormer trained on the things only
# (mmdet's CocoDataset on instances_*.json), evaluated with CocoMetric
# (segm, and bbox from the masks). Same classes as the panoptic config.
_base_ = './panoptic-segformer_r18-tiny_toy-panoptic.py'

data_root = 'data/toy_panoptic/'
metainfo = dict(
    classes=_base_.metainfo.thing_classes,
    palette=_base_.metainfo.palette[:len(_base_.metainfo.thing_classes)])
num_things_classes = len(metainfo['classes'])
num_stuff_classes = 0

model = dict(
    data_preprocessor=dict(pad_seg=False),
    bbox_head=dict(
        num_things_classes=num_things_classes,
        num_stuff_classes=num_stuff_classes),
    panoptic_fusion_head=dict(
        num_things_classes=num_things_classes,
        num_stuff_classes=num_stuff_classes,
        panoptic_on=False,
        instance_on=True))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                    'scale_factor'))
]
train_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='CocoDataset',
        data_root=data_root,
        metainfo=metainfo,
        ann_file='annotations/instances_train.json',
        data_prefix=dict(img='train/'),
        filter_cfg=dict(filter_empty_gt=False),
        pipeline=train_pipeline))
val_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='CocoDataset',
        data_root=data_root,
        metainfo=metainfo,
        ann_file='annotations/instances_val.json',
        data_prefix=dict(img='val/'),
        test_mode=True,
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = [
    dict(type='CocoMetric',
         ann_file=data_root + 'annotations/instances_val.json',
         metric=['bbox', 'segm'])
]
test_evaluator = val_evaluator

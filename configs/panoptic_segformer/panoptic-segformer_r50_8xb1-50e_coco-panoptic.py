# Panoptic SegFormer, ResNet-50, 50 epochs on COCO panoptic (paper Table 1:
# PQ 50.0, 47.0M parameters, 246 GFLOPs at 1200x800). The model, data,
# schedule and runtime are those of configs/_base_; this file only keeps the
# best checkpoint by PQ.
_base_ = [
    '../_base_/models/panoptic-segformer_r50.py',
    '../_base_/datasets/coco_panoptic.py',
    '../_base_/schedules/schedule_50e.py', '../_base_/default_runtime.py'
]

default_hooks = dict(
    checkpoint=dict(save_best='coco_panoptic/PQ', rule='greater'))

# Test-time augmentation (`tools/test.py CONFIG CKPT --tta`): horizontal flip
# at three scales, 6 views merged segment by segment by
# PanopticSegFormerTTAModel (same-class masks of different views with IoU
# > iou_thr are averaged, scores summed over the number of views, then
# mask-wise merging with the thresholds of the
# model's panoptic_fusion_head).
tta_model = dict(
    type='PanopticSegFormerTTAModel', iou_thr=0.5, score_mode='views')
tta_scales = [(1333, 800), (1000, 600), (1666, 1000)]
tta_pipeline = [
    dict(type='LoadImageFromFile', backend_args={{_base_.backend_args}}),
    dict(
        type='TestTimeAug',
        transforms=[
            [dict(type='Resize', scale=s, keep_ratio=True)
             for s in tta_scales],
            [dict(type='RandomFlip', prob=1.),
             dict(type='RandomFlip', prob=0.)],
            [dict(type='PanopticSegFormerLoadPanopticAnnotations',
                  backend_args={{_base_.backend_args}})],
            [dict(type='PackDetInputs',
                  meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                             'scale_factor', 'flip', 'flip_direction'))]
        ])
]

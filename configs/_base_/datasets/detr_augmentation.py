# DETR's training augmentation (Carion et al. 2020, appendix A.4), which the
# paper follows and the authors' code implements: a horizontal flip, then
# with probability 1/2 a multi-scale resize (shorter side 480-800 in steps
# of 32, longer side at most 1333), otherwise a resize to a shorter side of
# 400/500/600, a random crop of 384-600 pixels per side and the same
# multi-scale resize. mmdet's DETR and Deformable DETR configs spell it the
# same way. The crop cuts image, masks, boxes and semantic map with one
# window; boxes are recomputed from the cut masks, and a thing whose mask
# left the window (or vanished when resized) is dropped, while images left
# with stuff only are kept, as stuff-only images are trained on.
multi_scale_resize = dict(
    type='RandomChoiceResize',
    scales=[(1333, short) for short in range(480, 801, 32)],
    keep_ratio=True)
detr_augmentation = [
    dict(type='RandomFlip', prob=0.5),
    dict(
        type='RandomChoice',
        transforms=[
            [multi_scale_resize],
            [
                dict(
                    type='RandomChoiceResize',
                    # no limit on the longer side, as DETR's
                    scales=[(4200, 400), (4200, 500), (4200, 600)],
                    keep_ratio=True),
                dict(
                    type='RandomCrop',
                    crop_type='absolute_range',
                    crop_size=(384, 600),
                    recompute_bbox=True,
                    allow_negative_crop=True),
                multi_scale_resize,
            ],
        ]),
    dict(
        type='FilterAnnotations',
        min_gt_bbox_wh=(1e-5, 1e-5),
        by_mask=True,
        keep_empty=False),
]

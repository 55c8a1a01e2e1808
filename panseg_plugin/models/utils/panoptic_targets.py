"""Training targets of Panoptic SegFormer: things and stuff as one set."""
from typing import Tuple

import torch.nn.functional as F
from mmdet.models.utils import preprocess_panoptic_gt
from mmdet.structures import DetDataSample
from mmengine.structures import InstanceData

from .location_targets import masks_to_center_scale


def valid_cells(img_shape: Tuple[int, int],
                batch_input_shape: Tuple[int, int],
                grid_shape: Tuple[int, int]) -> Tuple[int, int]:
    """Rows and columns of a grid over the padded batch input that hold any
    image pixel (the others cover padding only).

    Args:
        img_shape (tuple[int, int]): Valid (h, w) of the image.
        batch_input_shape (tuple[int, int]): Padded (H, W) of the batch.
        grid_shape (tuple[int, int]): (H_g, W_g), a fraction of (H, W).

    Returns:
        tuple[int, int]: ``(ceil(h * H_g / H), ceil(w * W_g / W))``.
    """
    (h, w), (pad_h, pad_w), (grid_h, grid_w) = (img_shape[:2],
                                                batch_input_shape[:2],
                                                grid_shape)
    return -(-h * grid_h // pad_h), -(-w * grid_w // pad_w)


def panoptic_targets(data_sample: DetDataSample, num_things_classes: int,
                     num_stuff_classes: int, mask_size: Tuple[int, int],
                     loss_upsample: int = 1) -> InstanceData:
    """Things and stuff of one image as one set of segments.

    Stuff segments come from ``gt_sem_seg`` (when ``num_stuff_classes`` >
    0), things from ``gt_instances`` (mmdet's ``preprocess_panoptic_gt``);
    segments without any pixel are dropped.

    Args:
        data_sample (DetDataSample): With ``gt_instances`` (``labels``,
            ``masks``), optionally ``gt_sem_seg`` (255 = void) and the
            metainfo ``batch_input_shape`` and ``img_shape``.
        num_things_classes (int): Thing classes.
        num_stuff_classes (int): Stuff classes.
        mask_size (tuple[int, int]): (H_0, W_0) of the predicted masks.
        loss_upsample (int): u, the resolution factor of the loss masks.

    Returns:
        InstanceData: M segments with ``labels`` (M,), ``masks``
        (M, H_0, W_0) float (area-downsampled, for matching),
        ``loss_masks`` (M, u * H_0, u * W_0) float and ``locations``
        (M, 3) centre/scale targets (paper Eq. 4).
    """
    pad_h, pad_w = data_sample.batch_input_shape
    gt = data_sample.gt_instances
    things = gt.masks.pad((pad_h, pad_w), pad_val=0) if \
        gt.masks.height != pad_h or gt.masks.width != pad_w else gt.masks
    sem = None
    if num_stuff_classes > 0 and 'gt_sem_seg' in data_sample:
        sem = data_sample.gt_sem_seg.sem_seg
        sem = F.pad(sem, (0, pad_w - sem.size(-1), 0, pad_h - sem.size(-2)),
                    value=255)
    labels, masks = preprocess_panoptic_gt(gt.labels, things, sem,
                                           num_things_classes,
                                           num_stuff_classes)
    masks = masks.to(gt.labels.device)
    keep = masks.flatten(1).any(dim=1)
    labels, masks = labels[keep], masks[keep]
    locations = masks_to_center_scale(masks, data_sample.img_shape)
    masks = masks[None].float()
    small = F.interpolate(masks, size=tuple(mask_size), mode='area')[0]
    loss_masks = small if loss_upsample == 1 else F.interpolate(
        masks,
        size=(mask_size[0] * loss_upsample, mask_size[1] * loss_upsample),
        mode='area')[0]
    return InstanceData(labels=labels, masks=small, loss_masks=loss_masks,
                        locations=locations)

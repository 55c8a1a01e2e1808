"""Scoring and mask-wise merging of the CVPR'22 (released) models.

The released models score a candidate by its class score times the square
of its mask quality and merge with separate quality and overlap thresholds
for things and stuff. These are pure functions so that they can be checked
against the authors' outputs on hand-made masks.
"""
from typing import Tuple

import torch
from mmdet.evaluation.functional import INSTANCE_OFFSET
from torch import Tensor


def cvpr22_mask_scores(masks: Tensor,
                       scores: Tensor,
                       mask_thr: float = 0.5,
                       mask_quality_power: float = 2.0) -> Tuple[Tensor,
                                                                 Tensor]:
    """Binarise masks and re-score candidates by their mask quality.

    ``quality = sum(m * [m > t]) / (sum([m > t]) + 1)``: the mean soft value
    inside the binary mask, with ``+ 1`` in the denominator (it lowers the
    quality of small masks and makes an empty mask score 0), as the
    authors' code. The merged score is ``score * quality ** power``.

    Args:
        masks (Tensor): (N, H, W) float soft masks (ReLU outputs, not
            probabilities) at the output resolution.
        scores (Tensor): (N,) class scores.
        mask_thr (float): A pixel is in the mask where ``m > mask_thr``.
        mask_quality_power (float): Exponent of the quality factor.

    Returns:
        tuple[Tensor, Tensor]: Merged scores (N,) and binary masks (N, H, W).
    """
    binary = masks > mask_thr
    quality = (masks * binary).sum((1, 2)) / (binary.sum((1, 2)) + 1)
    return scores * quality**mask_quality_power, binary


def cvpr22_mask_wise_merge(binary_masks: Tensor,
                           scores: Tensor,
                           labels: Tensor,
                           num_things_classes: int,
                           num_classes: int,
                           quality_thr_things: float = 0.25,
                           quality_thr_stuff: float = 0.25,
                           overlap_thr_things: float = 0.4,
                           overlap_thr_stuff: float = 0.2) -> Tensor:
    """Paint sorted candidates into a panoptic map (the released rules).

    Candidates are visited in the given order (the caller sorts them by
    merged score). A candidate is skipped if its score is below its group's
    quality threshold (equality is kept), if its mask is empty, or if the
    fraction of its mask already painted exceeds its group's overlap
    threshold (equality is kept, the ratio is computed in float64 from
    pixel counts); otherwise it paints its still-free pixels.

    The output follows mmdet's convention: a thing pixel holds
    ``label + k * INSTANCE_OFFSET`` with ``k = 1, 2, ...`` in paint order,
    a stuff pixel its label and a void pixel ``num_classes``.

    Args:
        binary_masks (Tensor): (N, H, W) bool masks, in visiting order.
        scores (Tensor): (N,) merged scores, same order.
        labels (Tensor): (N,) long labels; ``< num_things_classes`` are
            things.
        num_things_classes (int): Number of thing classes.
        num_classes (int): Things + stuff classes; the void value.
        quality_thr_things (float): Score threshold of things.
        quality_thr_stuff (float): Score threshold of stuff.
        overlap_thr_things (float): Largest painted fraction of a thing.
        overlap_thr_stuff (float): Largest painted fraction of stuff.

    Returns:
        Tensor: (H, W) long panoptic map.
    """
    if binary_masks.dim() != 3 or scores.shape != labels.shape or \
            scores.shape != binary_masks.shape[:1]:
        raise ValueError(
            f'expected masks (N, H, W) and scores, labels (N,), got '
            f'{tuple(binary_masks.shape)}, {tuple(scores.shape)}, '
            f'{tuple(labels.shape)}')
    height, width = binary_masks.shape[1:]
    pan_seg = torch.full((height, width), num_classes, dtype=torch.long,
                         device=binary_masks.device)
    taken = torch.zeros((height, width), dtype=torch.bool,
                        device=binary_masks.device)
    is_thing = labels < num_things_classes
    quality_thr = torch.where(
        is_thing, scores.new_tensor(quality_thr_things),
        scores.new_tensor(quality_thr_stuff))
    keep = (scores >= quality_thr).tolist()
    instance_id = 1
    for index, thing in enumerate(is_thing.tolist()):
        if not keep[index]:
            continue
        mask = binary_masks[index]
        area = int(mask.sum())
        if area == 0:
            continue
        overlap = int((mask & taken).sum()) / area
        if overlap > (overlap_thr_things if thing else overlap_thr_stuff):
            continue
        paint = mask & ~taken
        label = int(labels[index])
        if thing:
            pan_seg[paint] = label + instance_id * INSTANCE_OFFSET
            instance_id += 1
        else:
            pan_seg[paint] = label
        taken |= paint
    return pan_seg

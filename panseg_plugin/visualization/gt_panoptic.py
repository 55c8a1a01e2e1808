"""Ground truth of a packed sample as a panoptic map, for drawing."""
import torch
from mmdet.evaluation.functional import INSTANCE_OFFSET
from mmdet.structures import DetDataSample
from mmengine.structures import PixelData


def gt_panoptic_seg(data_sample: DetDataSample, num_classes: int) -> PixelData:
    """Rebuild mmdet's panoptic id map from ``gt_sem_seg`` and
    ``gt_instances``, the form :class:`DetLocalVisualizer` draws.

    Args:
        data_sample (DetDataSample): Has ``gt_sem_seg`` (1, H, W) with stuff
            labels and 255 for void, and ``gt_instances`` with ``labels`` and
            ``masks`` of the things.
        num_classes (int): Things + stuff; the void id.

    Returns:
        PixelData: ``sem_seg`` (1, H, W) long: stuff = label, thing =
        label + k * INSTANCE_OFFSET (k = 1, 2, ...), void = num_classes.
    """
    sem = data_sample.gt_sem_seg.sem_seg[0].long().clone()
    sem[sem >= num_classes] = num_classes
    instances = data_sample.gt_instances
    masks = instances.masks.to_tensor(dtype=torch.bool, device=sem.device)
    for k, (label, mask) in enumerate(zip(instances.labels, masks), 1):
        sem[mask[:sem.size(0), :sem.size(1)]] = int(label) + \
            k * INSTANCE_OFFSET
    return PixelData(sem_seg=sem[None])

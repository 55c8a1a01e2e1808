"""Dice matching cost of the released models' mask-level matching."""
from typing import Optional, Union

import torch
import torch.nn.functional as F
from mmdet.registry import TASK_UTILS
from mmengine.structures import InstanceData
from torch import Tensor


@TASK_UTILS.register_module()
class PanopticSegFormerCVPR22DiceCost:
    """``weight * (1 - 2 sum(p t) / (sum(p^2) + eps + sum(t^2) + eps))``.

    The authors' dice cost: raw (ReLU) mask predictions, no activation, the
    ground truth resized bilinearly to the prediction's size, ``eps`` added
    to each squared sum (mmdet's :class:`DiceCost` adds it to numerator and
    denominator instead, which changes near-tied matchings).

    Args:
        weight (float): Cost weight.
        eps (float): Added to each squared sum (1e-3).
    """

    def __init__(self, weight: Union[float, int] = 1.0,
                 eps: float = 1e-3) -> None:
        self.weight = weight
        self.eps = eps

    def __call__(self,
                 pred_instances: InstanceData,
                 gt_instances: InstanceData,
                 img_meta: Optional[dict] = None,
                 **kwargs) -> Tensor:
        """Cost matrix (num_preds, num_gts).

        Args:
            pred_instances (InstanceData): ``masks`` (N, h, w) float.
            gt_instances (InstanceData): ``masks`` (M, H, W), a tensor.
            img_meta (dict, optional): Unused.
        """
        pred = pred_instances.masks
        target = gt_instances.masks.float()
        if target.shape[-2:] != pred.shape[-2:]:
            target = F.interpolate(
                target[None], size=pred.shape[-2:], mode='bilinear',
                align_corners=False)[0]
        pred = pred.flatten(1)[:, None]
        target = target.flatten(1)[None]
        inter = torch.sum(pred * target, -1)
        dice = (2 * inter) / (
            (torch.sum(pred * pred, -1) + self.eps) +
            (torch.sum(target * target, -1) + self.eps))
        return (1 - dice) * self.weight

"""Targets of the location loss (paper Eq. 4): centre and scale of masks."""
from typing import Tuple

import torch
from torch import Tensor


def masks_to_center_scale(masks: Tensor, img_shape: Tuple[int, int]) -> Tensor:
    """Centre of mass and relative area of binary masks.

    The paper defines ``f_c(m)`` as the centre location and ``f_s(m)`` as
    "the size of the mask normalised by the size of the image". We use the
    mask area divided by the image area (one number per mask), and the
    centre normalised by the valid image width/height, the same frame as
    Deformable DETR's reference points.

    Args:
        masks (Tensor): (M, H, W) binary masks; H, W may include padding
            beyond ``img_shape`` (padding pixels are expected to be 0).
        img_shape (tuple[int, int]): Valid (unpadded) image size (h, w).

    Returns:
        Tensor: (M, 3) float tensor of (cx, cy, area_ratio), each in [0, 1].
        Empty masks get (0.5, 0.5, 0).
    """
    img_h, img_w = img_shape
    masks = masks.float()
    if masks.numel() == 0:
        return masks.new_zeros((masks.size(0), 3))
    area = masks.sum(dim=(1, 2))
    ys = torch.arange(masks.size(1), device=masks.device,
                      dtype=masks.dtype) + 0.5
    xs = torch.arange(masks.size(2), device=masks.device,
                      dtype=masks.dtype) + 0.5
    safe_area = area.clamp(min=1.0)
    cx = (masks.sum(dim=1) * xs).sum(dim=1) / safe_area / img_w
    cy = (masks.sum(dim=2) * ys).sum(dim=1) / safe_area / img_h
    empty = area == 0
    cx = torch.where(empty, torch.full_like(cx, 0.5), cx)
    cy = torch.where(empty, torch.full_like(cy, 0.5), cy)
    scale = area / float(img_h * img_w)
    return torch.stack([cx, cy, scale], dim=1).clamp(0.0, 1.0)

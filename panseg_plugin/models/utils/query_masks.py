"""Full-size masks of some queries of one image, for post-processing:
their upsampling from the padded batch grid, their score factors, and the
tuple that carries them from the instance path to the panoptic merge."""
from typing import NamedTuple, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor


class QueryMasks(NamedTuple):
    """Full-size binary masks of some queries of one image.

    Attributes:
        queries (Tensor): (K, ) long query indices.
        binary (Tensor): (K, H, W) bool, ``mask prob > mask_thr``.
        factor (Tensor): (K, ) mask score factors
            (:func:`mask_score_factors`).
    """
    queries: Tensor
    binary: Tensor
    factor: Tensor


def output_shape(img_meta: dict, rescale: bool) -> Tuple[int, int]:
    """(height, width) of the results: ``ori_shape`` if ``rescale`` else
    ``img_shape``."""
    key = 'ori_shape' if rescale else 'img_shape'
    return tuple(img_meta[key][:2])


def upsample_masks(mask_logits: Tensor, img_meta: dict,
                   rescale: bool) -> Tensor:
    """Bring mask logits from the padded batch input's grid to the output
    resolution.

    Args:
        mask_logits (Tensor): Shape (K, h, w), a fraction (stride 8) of
            ``batch_input_shape``.
        img_meta (dict): With ``batch_input_shape``, ``img_shape`` and, if
            ``rescale``, ``ori_shape``.
        rescale (bool): Resize to ``ori_shape`` after cropping.

    Returns:
        Tensor: Mask logits of shape (K, H, W), (H, W) being ``ori_shape``
        if ``rescale`` else ``img_shape``.
    """
    out_h, out_w = output_shape(img_meta, rescale)
    if mask_logits.shape[0] == 0:
        return mask_logits.new_zeros((0, out_h, out_w))
    if 'batch_input_shape' not in img_meta:
        raise KeyError('img_meta needs batch_input_shape, the padded '
                       'input size the masks were predicted on')
    pad_h, pad_w = img_meta['batch_input_shape'][:2]
    img_h, img_w = img_meta['img_shape'][:2]
    masks = F.interpolate(
        mask_logits[None], size=(pad_h, pad_w), mode='bilinear',
        align_corners=False)[0]
    # Drop the padding: it is not part of the image.
    masks = masks[:, :img_h, :img_w]
    if rescale and (img_h, img_w) != (out_h, out_w):
        masks = F.interpolate(
            masks[None], size=(out_h, out_w), mode='bilinear',
            align_corners=False)[0]
    return masks


def mask_score_factors(mask_probs: Tensor, mask_thr: float,
                       power: float) -> Tensor:
    """Mask quality factors multiplied into the class scores.

    Args:
        mask_probs (Tensor): Soft masks of shape (K, H, W).
        mask_thr (float): A pixel is inside where ``prob > mask_thr``.
        power (float): Exponent; 0 gives all ones.

    Returns:
        Tensor: ``mean(mask_prob inside binary mask) ** power``, shape
        (K, ); 0 for an empty binary mask. Each mask is reduced on its
        own: how a sum rounds depends on the shape it reduces, so a mask's
        factor does not depend on how many masks come with it.
    """
    if power == 0 or len(mask_probs) == 0:
        return mask_probs.new_ones(mask_probs.shape[0])
    means = []
    for probs in mask_probs:
        binary = probs > mask_thr
        means.append((probs * binary).sum() / binary.sum().clamp(min=1))
    return torch.stack(means)**power

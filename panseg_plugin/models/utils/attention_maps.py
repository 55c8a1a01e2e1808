"""Pure functions that turn mask-decoder attention maps into masks.

Paper section 3.4, Eq. 1-2: the attention map ``A`` of the last cross
attention layer, of shape (N, h, L_1 + ... + L_K), is split per level and
reshaped to the level's spatial size (Eq. 1), upsampled bilinearly to the
first (stride 8) level, concatenated along channels (Eq. 2) and reduced to
one mask logit per query by a 1x1 convolution.
"""
from typing import List

import torch
import torch.nn.functional as F
from torch import Tensor


def split_levels(attn: Tensor, spatial_shapes: Tensor) -> List[Tensor]:
    """Split flattened multi-level attention maps into per-level maps (Eq. 1).

    Args:
        attn (Tensor): Attention maps, shape (B, N, h, L) where
            ``L = sum(H_i * W_i)`` over the levels.
        spatial_shapes (Tensor): (K, 2) long tensor of per-level (H_i, W_i),
            in the order the tokens were flattened.

    Returns:
        list[Tensor]: K maps, the i-th of shape (B, N, h, H_i, W_i).
    """
    shapes = [(int(h), int(w)) for h, w in spatial_shapes.tolist()]
    lengths = [h * w for h, w in shapes]
    if sum(lengths) != attn.size(-1):
        raise ValueError(
            f'attention maps have {attn.size(-1)} tokens but spatial_shapes '
            f'{shapes} describe {sum(lengths)}')
    chunks = attn.split(lengths, dim=-1)
    return [
        chunk.reshape(*attn.shape[:-1], h, w)
        for chunk, (h, w) in zip(chunks, shapes)
    ]


def attention_maps_to_masks(attn: Tensor, spatial_shapes: Tensor,
                            weight: Tensor, bias: Tensor) -> Tensor:
    """Mask logits from multi-level attention maps (Eq. 1-2 and the 1x1 conv).

    Computes ``conv1x1(concat_i(up_i(A_i)))`` where ``up_i`` upsamples level
    ``i`` bilinearly to the first level's size. A 1x1 convolution and
    bilinear interpolation are both linear, so the convolution is applied
    per level *before* upsampling (``sum_i up_i(W_i A_i) + b``). The result
    is identical, but only one channel per query is upsampled instead of
    ``h * K``, which keeps the memory of 400 queries at 1/8 resolution small.

    Args:
        attn (Tensor): Attention maps, shape (B, N, h, L).
        spatial_shapes (Tensor): (K, 2) per-level (H_i, W_i); level 0 sets
            the output resolution.
        weight (Tensor): 1x1 conv weight of shape (1, h * K, 1, 1), channels
            ordered level-major as in ``torch.cat(levels, dim=1)``.
        bias (Tensor | None): Conv bias of shape (1,).

    Returns:
        Tensor: Mask logits of shape (B, N, H_0, W_0).
    """
    levels = split_levels(attn, spatial_shapes)
    batch, num_queries, num_heads = attn.shape[:3]
    if weight.shape[:2] != (1, num_heads * len(levels)):
        raise ValueError(
            f'1x1 conv weight {tuple(weight.shape)} does not match '
            f'{num_heads} heads x {len(levels)} levels')
    out_size = levels[0].shape[-2:]
    weights = weight.view(len(levels), num_heads)
    masks = 0
    for level_map, level_weight in zip(levels, weights):
        # (B, N, h, H_i, W_i) x (h,) -> (B, N, H_i, W_i)
        reduced = torch.einsum('bnhyx,h->bnyx', level_map, level_weight)
        if reduced.shape[-2:] != out_size:
            reduced = F.interpolate(
                reduced, size=out_size, mode='bilinear', align_corners=False)
        masks = masks + reduced
    if bias is not None:
        masks = masks + bias.view(1, 1, 1, 1)
    return masks

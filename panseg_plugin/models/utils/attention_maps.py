"""Pure functions that turn mask-decoder attention maps into masks.

Paper section 3.4, Eq. 1-2: the attention map ``A`` of the last cross
attention layer, of shape (N, h, L_1 + ... + L_K), is split per level and
reshaped to the level's spatial size (Eq. 1), upsampled bilinearly to the
first (stride 8) level, concatenated along channels (Eq. 2) and reduced to
one mask logit per query by a 1x1 convolution.
:func:`query_key_to_masks` computes the same masks from the projected
queries and keys, never holding the (N, h, L) maps.
"""
from typing import List, Optional

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
    weights = weight.view(len(levels), num_heads)
    # (B, N, h, H_i, W_i) x (h,) -> (B, N, H_i, W_i)
    return _sum_upsampled((torch.einsum('bnhyx,h->bnyx', level_map, w)
                           for level_map, w in zip(levels, weights)),
                          tuple(levels[0].shape[-2:]), bias)


def _sum_upsampled(level_masks, out_size, bias: Optional[Tensor]) -> Tensor:
    """Sum of per-level (B, N, H_i, W_i) mask logits, each upsampled
    bilinearly to ``out_size`` (H_0, W_0), plus the conv bias."""
    masks = 0
    for reduced in level_masks:
        if tuple(reduced.shape[-2:]) != tuple(out_size):
            reduced = F.interpolate(
                reduced, size=out_size, mode='bilinear', align_corners=False)
        masks = masks + reduced
    if bias is not None:
        masks = masks + bias.view(1, 1, 1, 1)
    return masks


def query_key_to_masks(query: Tensor, key: Tensor, spatial_shapes: Tensor,
                       weight: Tensor, bias: Optional[Tensor],
                       num_heads: int, scale: float) -> Tensor:
    """The masks of :func:`attention_maps_to_masks`, without the logits.

    The logits of head ``h`` are ``scale * q_h . k_h`` and the 1x1 conv
    weighs each (level i, head h) map by ``w_{i,h}``, so the mask of level
    ``i`` before upsampling is one product ``(q * s_i) @ k_i^T``, where
    ``s_i`` repeats ``scale * w_{i,h}`` over the channels of head ``h``:
    an (N, C) x (C, L_i) product that never holds the (N, h, L) logits.
    Upsampling and bias follow as in :func:`attention_maps_to_masks`.

    Args:
        query (Tensor): (B, N, C) projected queries (before the scale).
        key (Tensor): (B, L, C) projected keys, ``L = sum(H_i * W_i)``.
        spatial_shapes (Tensor): (K, 2) per-level (H_i, W_i).
        weight (Tensor): 1x1 conv weight (1, h * K, 1, 1), level-major.
        bias (Tensor | None): Conv bias (1,).
        num_heads (int): Heads h; ``C`` must be a multiple.
        scale (float): The attention scale, ``(C / h) ** -0.5``.

    Returns:
        Tensor: Mask logits (B, N, H_0, W_0).
    """
    shapes = [(int(h), int(w)) for h, w in spatial_shapes.tolist()]
    lengths = [h * w for h, w in shapes]
    if sum(lengths) != key.size(1):
        raise ValueError(
            f'keys have {key.size(1)} tokens but spatial_shapes {shapes} '
            f'describe {sum(lengths)}')
    if weight.shape[:2] != (1, num_heads * len(shapes)):
        raise ValueError(
            f'1x1 conv weight {tuple(weight.shape)} does not match '
            f'{num_heads} heads x {len(shapes)} levels')
    batch, num_queries, channels = query.shape
    # (K, h) -> (K, C): each head's weight over that head's channels
    channel_weights = (weight.view(len(shapes), num_heads) *
                       scale).repeat_interleave(channels // num_heads, dim=1)
    return _sum_upsampled(
        (torch.matmul(query * level_weight, level_key.transpose(1, 2)).view(
            batch, num_queries, *shape)
         for level_key, level_weight, shape in zip(
             key.split(lengths, dim=1), channel_weights, shapes)),
        shapes[0], bias)

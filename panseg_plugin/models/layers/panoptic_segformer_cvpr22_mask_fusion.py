"""Attention logits to one mask per query, as in the CVPR'22 release."""
from typing import List, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class PanopticSegFormerCVPR22MaskFusion(nn.Module):
    """Per-level ``Linear(h, h)``, ReLU, upsampling, ``Linear(K h, 1)``, ReLU.

    The released (CVPR'22) models turn the pre-softmax attention logits of a
    mask-decoder block into a mask differently from the v1 paper's
    concat + 1x1 conv (:func:`attention_maps_to_masks`): each level first
    mixes its heads with its own ``Linear(h, h)`` followed by a ReLU; levels
    ``1..K-1`` are then upsampled bilinearly to level 0, the ``K h``
    channels are concatenated level-major and a ``Linear(K h, 1)`` with a
    ReLU gives the mask. There is no sigmoid: masks are non-negative and
    unbounded, and inference binarises them at 0.5.

    The per-level ReLU does not commute with upsampling, so the v1 trick of
    fusing before upsampling does not apply here; the operations follow the
    authors' order (channels-last linears, ``(B N, h, H_i, W_i)``
    interpolation) so that results are bitwise equal on CPU.

    Args:
        num_heads (int): Attention heads h.
        num_levels (int): Feature levels K of the attention logits.
    """

    def __init__(self, num_heads: int = 8, num_levels: int = 3) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.num_levels = num_levels
        self.level_fcs = nn.ModuleList(
            nn.Linear(num_heads, num_heads) for _ in range(num_levels))
        self.mask_fc = nn.Linear(num_heads * num_levels, 1)

    def forward(self, attn_logits: Tensor,
                spatial_shapes: Sequence[Tuple[int, int]]) -> Tensor:
        """Fuse the levels into one mask per query.

        Args:
            attn_logits (Tensor): (B, N, h, L) pre-softmax logits, L the sum
                of ``H_i W_i`` over the K levels, row-major per level.
            spatial_shapes (Sequence[tuple[int, int]]): K pairs (H_i, W_i).

        Returns:
            Tensor: Masks (B, N, H_0, W_0), >= 0.
        """
        batch, num_queries, num_heads, length = attn_logits.shape
        shapes = [(int(h), int(w)) for h, w in spatial_shapes]
        sizes = [h * w for h, w in shapes]
        if num_heads != self.num_heads or len(shapes) != self.num_levels \
                or sum(sizes) != length:
            raise ValueError(
                f'attention logits {tuple(attn_logits.shape)} do not match '
                f'{self.num_heads} heads and {self.num_levels} levels of '
                f'shapes {shapes}')
        # (B, N, L, h): heads last, as the per-level linears expect
        logits = attn_logits.permute(0, 1, 3, 2)
        out_h, out_w = shapes[0]
        fused: List[Tensor] = []
        for level, (chunk, (h, w)) in enumerate(
                zip(logits.split(sizes, dim=2), shapes)):
            feat = F.relu(self.level_fcs[level](chunk))
            if level > 0:
                feat = feat.permute(0, 1, 3, 2).reshape(
                    batch * num_queries, num_heads, h, w)
                feat = F.interpolate(
                    feat, size=(out_h, out_w), mode='bilinear',
                    align_corners=False)
                feat = feat.permute(0, 2, 3, 1).reshape(
                    batch, num_queries, out_h * out_w, num_heads)
            fused.append(feat)
        mask = F.relu(self.mask_fc(torch.cat(fused, dim=-1)))
        return mask.view(batch, num_queries, out_h, out_w)

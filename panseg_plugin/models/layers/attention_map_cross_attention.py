"""Multi-head cross-attention that also returns its attention logits."""
from typing import Optional, Tuple

import torch
from torch import Tensor, nn


class AttentionMapCrossAttention(nn.Module):
    """Vanilla multi-head cross-attention exposing the per-head attention map.

    ``torch.nn.MultiheadAttention`` only returns softmax weights averaged or
    per head; Panoptic SegFormer turns the attention map itself into masks,
    so this module returns the scaled dot-product logits
    ``A = (Q K^T) / sqrt(d_head)`` before the softmax. The paper does not say
    whether A is taken before or after the softmax; we take the logits, as
    the authors' code does: after a softmax over all tokens of all levels
    every value is about ``1 / L``, which a 1x1 conv can hardly turn into a
    sharp mask.

    Args:
        embed_dims (int): Channels of queries, keys and values.
        num_heads (int): Number of attention heads h.
        attn_drop (float): Dropout on the softmax weights.
        proj_drop (float): Dropout after the output projection.
    """

    def __init__(self,
                 embed_dims: int = 256,
                 num_heads: int = 8,
                 attn_drop: float = 0.0,
                 proj_drop: float = 0.0) -> None:
        super().__init__()
        if embed_dims % num_heads != 0:
            raise ValueError(f'embed_dims ({embed_dims}) must be divisible '
                             f'by num_heads ({num_heads})')
        self.embed_dims = embed_dims
        self.num_heads = num_heads
        self.scale = (embed_dims // num_heads)**-0.5
        self.q_proj = nn.Linear(embed_dims, embed_dims)
        self.k_proj = nn.Linear(embed_dims, embed_dims)
        self.v_proj = nn.Linear(embed_dims, embed_dims)
        self.out_proj = nn.Linear(embed_dims, embed_dims)
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj_drop = nn.Dropout(proj_drop)

    def _heads(self, x: Tensor) -> Tensor:
        """(B, S, C) -> (B, h, S, C / h)."""
        batch, length, _ = x.shape
        return x.view(batch, length, self.num_heads, -1).transpose(1, 2)

    def forward(self,
                query: Tensor,
                memory: Tensor,
                query_pos: Optional[Tensor] = None,
                memory_pos: Optional[Tensor] = None,
                memory_mask: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
        """Attend from queries to memory tokens.

        Args:
            query (Tensor): (B, N, C) queries.
            memory (Tensor): (B, L, C) key/value tokens.
            query_pos (Tensor, optional): (B, N, C) added to the queries
                before the query projection.
            memory_pos (Tensor, optional): (B, L, C) added to the tokens
                before the key projection (not to the values).
            memory_mask (Tensor, optional): (B, L) bool, True at padding
                tokens, which receive no attention weight.

        Returns:
            tuple[Tensor, Tensor]: The attended output (B, N, C) (after the
            output projection, before the residual) and the attention logits
            (B, N, h, L), unmasked.
        """
        q = query if query_pos is None else query + query_pos
        k = memory if memory_pos is None else memory + memory_pos
        q = self._heads(self.q_proj(q))
        k = self._heads(self.k_proj(k))
        v = self._heads(self.v_proj(memory))
        logits = torch.matmul(q, k.transpose(-2, -1)) * self.scale
        weights = logits
        if memory_mask is not None:
            weights = logits.masked_fill(memory_mask[:, None, None, :],
                                         float('-inf'))
        weights = self.attn_drop(weights.softmax(dim=-1))
        out = torch.matmul(weights, v).transpose(1, 2).flatten(2)
        out = self.proj_drop(self.out_proj(out))
        return out, logits.transpose(1, 2)

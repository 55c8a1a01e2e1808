"""Multi-head cross-attention exposing what its attention map is made of."""
from typing import NamedTuple, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint


class AttentionTerms(NamedTuple):
    """What a mask is made of: the cross-attention's projected queries and
    keys, and optionally the logits ``scale * q_h . k_h`` themselves.

    Attributes:
        query (Tensor): (B, N, C) projected queries (before the scale).
        key (Tensor): (B, L, C) projected keys.
        logits (Tensor | None): (B, N, h, L) logits, when asked for.
    """
    query: Tensor
    key: Tensor
    logits: Optional[Tensor]


def chunked_dropout_attention(q: Tensor, k: Tensor, v: Tensor,
                              valid: Optional[Tensor], dropout: float,
                              scale: float, chunk_size: int) -> Tensor:
    """``scaled_dot_product_attention`` with dropout, ``chunk_size``
    queries at a time, each chunk recomputed in the backward pass.

    torch's fused CPU kernel has no dropout, and its fallback keeps the
    (B, h, N, L) weights, their dropout mask and the dropped weights for
    the backward pass. Here each chunk runs under
    ``torch.utils.checkpoint`` (which restores the random state, so the
    recomputation drops the same weights): only (B, h, chunk_size, L)
    exists at a time, for one more forward pass of the attention.

    Args:
        q (Tensor): (B, h, N, d) queries.
        k, v (Tensor): (B, h, L, d) keys and values.
        valid (Tensor | None): (B, 1, 1, L) bool, True where attended.
        dropout (float): Dropout probability of the weights.
        scale (float): Logit scale.
        chunk_size (int): Queries per chunk.

    Returns:
        Tensor: (B, h, N, d) attention output.
    """

    def attend(q_chunk, k, v, valid):
        return F.scaled_dot_product_attention(
            q_chunk, k, v, attn_mask=valid, dropout_p=dropout, scale=scale)

    return torch.cat([
        checkpoint(attend, q_chunk, k, v, valid, use_reentrant=False)
        for q_chunk in q.split(chunk_size, dim=2)
    ], dim=2)


class AttentionMapCrossAttention(nn.Module):
    """Vanilla multi-head cross-attention exposing what its map is made of.

    ``torch.nn.MultiheadAttention`` only returns softmax weights averaged or
    per head; Panoptic SegFormer turns the attention map itself into masks,
    so this module returns the scaled dot-product logits
    ``A = (Q K^T) / sqrt(d_head)`` before the softmax. The paper does not say
    whether A is taken before or after the softmax; we take the logits, as
    the authors' code does: after a softmax over all tokens of all levels
    every value is about ``1 / L``, which a 1x1 conv can hardly turn into a
    sharp mask.

    The logits need not exist for the masks: a mask is a linear function of
    them (1x1 conv over heads and levels), so it can be computed from the
    projected queries and keys directly (:func:`query_key_to_masks`), and
    the attention output comes from torch's
    ``scaled_dot_product_attention`` (fused kernels; on the CPU, which has
    none with dropout, training with attention dropout goes through
    :func:`chunked_dropout_attention`). ``need_logits=True`` computes the
    logits explicitly, the reference path, also used to visualise the maps
    (paper Fig. 5).

    Args:
        embed_dims (int): Channels of queries, keys and values.
        num_heads (int): Number of attention heads h.
        attn_drop (float): Dropout on the softmax weights.
        proj_drop (float): Dropout after the output projection.
        dropout_chunk_size (int): Queries per chunk of
            :func:`chunked_dropout_attention`.
    """

    def __init__(self,
                 embed_dims: int = 256,
                 num_heads: int = 8,
                 attn_drop: float = 0.0,
                 proj_drop: float = 0.0,
                 dropout_chunk_size: int = 64) -> None:
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
        self.dropout_chunk_size = dropout_chunk_size

    def _heads(self, x: Tensor) -> Tensor:
        """(B, S, C) -> (B, h, S, C / h)."""
        batch, length, _ = x.shape
        return x.view(batch, length, self.num_heads, -1).transpose(1, 2)

    def forward(self,
                query: Tensor,
                memory: Tensor,
                query_pos: Optional[Tensor] = None,
                memory_pos: Optional[Tensor] = None,
                memory_mask: Optional[Tensor] = None,
                need_logits: bool = True) -> Tuple[Tensor, AttentionTerms]:
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
            need_logits (bool): Compute the logits (B, N, h, L) and the
                output from them (the reference path). False: the output
                comes from ``scaled_dot_product_attention`` and no logits
                are kept; masks are then built from the projected queries
                and keys (:func:`query_key_to_masks`).

        Returns:
            tuple[Tensor, AttentionTerms]: The attended output (B, N, C)
            (after the output projection, before the residual) and the
            projected queries and keys, with the unmasked logits when
            ``need_logits``.
        """
        q = query if query_pos is None else query + query_pos
        k = memory if memory_pos is None else memory + memory_pos
        q, k = self.q_proj(q), self.k_proj(k)
        qh, kh, vh = self._heads(q), self._heads(k), self._heads(
            self.v_proj(memory))
        logits = None
        if need_logits:
            logits = torch.matmul(qh, kh.transpose(-2, -1)) * self.scale
            weights = logits
            if memory_mask is not None:
                weights = logits.masked_fill(memory_mask[:, None, None, :],
                                             float('-inf'))
            weights = self.attn_drop(weights.softmax(dim=-1))
            out = torch.matmul(weights, vh)
            logits = logits.transpose(1, 2)
        else:
            valid = None if memory_mask is None else \
                ~memory_mask[:, None, None, :]
            dropout = self.attn_drop.p if self.training else 0.0
            if dropout > 0 and qh.device.type == 'cpu' and \
                    torch.is_grad_enabled():
                out = chunked_dropout_attention(qh, kh, vh, valid, dropout,
                                                self.scale,
                                                self.dropout_chunk_size)
            else:
                out = F.scaled_dot_product_attention(
                    qh, kh, vh, attn_mask=valid, dropout_p=dropout,
                    scale=self.scale)
        out = self.proj_drop(self.out_proj(out.transpose(1, 2).flatten(2)))
        return out, AttentionTerms(q, k, logits)

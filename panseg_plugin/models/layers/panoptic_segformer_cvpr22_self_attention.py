"""Fused-qkv multi-head self-attention of the CVPR'22 stuff decoder."""
from torch import Tensor, nn


class PanopticSegFormerCVPR22SelfAttention(nn.Module):
    """Multi-head self-attention with one packed ``qkv`` projection.

    The released stuff mask decoder uses a ViT-style self-attention: one
    ``Linear(C, 3C)`` whose output splits into q, k, v (in that order, each
    head-major), softmax of ``q k^T / sqrt(C / h)``, an output ``Linear``,
    no dropout and no positional term inside (the caller has already added
    the positions to the queries). ``nn.MultiheadAttention`` holds the same
    parameters (``in_proj_weight`` = ``qkv.weight``) but scales q before the
    product and may take a fused kernel, which changes results in the last
    bits; this module keeps the authors' order so that parity with their
    code is exact.

    Args:
        embed_dims (int): Channels C.
        num_heads (int): Attention heads h.
    """

    def __init__(self, embed_dims: int = 256, num_heads: int = 8) -> None:
        super().__init__()
        if embed_dims % num_heads != 0:
            raise ValueError(f'embed_dims ({embed_dims}) must be divisible '
                             f'by num_heads ({num_heads})')
        self.embed_dims = embed_dims
        self.num_heads = num_heads
        self.scale = (embed_dims // num_heads)**-0.5
        self.qkv = nn.Linear(embed_dims, embed_dims * 3)
        self.proj = nn.Linear(embed_dims, embed_dims)

    def forward(self, query: Tensor) -> Tensor:
        """Attend among the queries.

        Args:
            query (Tensor): (B, N, C) queries (positions included).

        Returns:
            Tensor: (B, N, C) output after the projection, before the
            residual.
        """
        batch, num_queries, channels = query.shape
        qkv = self.qkv(query).reshape(batch, num_queries, 3, self.num_heads,
                                      channels // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)
        attn = (q @ k.transpose(-2, -1)) * self.scale
        out = attn.softmax(dim=-1) @ v
        out = out.transpose(1, 2).reshape(batch, num_queries, channels)
        return self.proj(out)

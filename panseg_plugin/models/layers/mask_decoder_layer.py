"""One layer of the Panoptic SegFormer mask decoder."""
from typing import Optional, Tuple

from mmcv.cnn.bricks.transformer import FFN
from torch import Tensor, nn

from .attention_map_cross_attention import (AttentionMapCrossAttention,
                                            AttentionTerms)


class MaskDecoderLayer(nn.Module):
    """DETR-style decoder layer whose cross-attention exposes its map.

    Order (post-norm, as DETR): optional self-attention among the queries,
    cross-attention to the encoder tokens, FFN. Each sub-layer returns only
    its update; the layer adds every residual itself,
    ``query = norm(query + dropout(sublayer(query)))``, so the three
    follow one convention that can be read here.

    The paper calls the mask decoder "4 vanilla cross-attention layers" and
    takes its settings from DETR; we use DETR's decoder layer (self-attention,
    cross-attention, FFN of 2048 channels). With these sizes the parameter
    counts of all five backbones land within 5% of the paper's Table 1; the
    self-attention is a constructor argument for variants without it.

    Args:
        embed_dims (int): Channels C.
        num_heads (int): Attention heads h.
        feedforward_channels (int): Hidden channels of the FFN.
        dropout (float): Dropout of attention weights, projections and FFN.
        with_self_attn (bool): Whether queries attend to each other first.
    """

    def __init__(self,
                 embed_dims: int = 256,
                 num_heads: int = 8,
                 feedforward_channels: int = 2048,
                 dropout: float = 0.1,
                 with_self_attn: bool = True) -> None:
        super().__init__()
        self.embed_dims = embed_dims
        self.num_heads = num_heads
        self.self_attn = nn.MultiheadAttention(
            embed_dims, num_heads, dropout=dropout,
            batch_first=True) if with_self_attn else None
        self.cross_attn = AttentionMapCrossAttention(
            embed_dims, num_heads, attn_drop=dropout)
        self.ffn = FFN(
            embed_dims=embed_dims,
            feedforward_channels=feedforward_channels,
            ffn_drop=dropout,
            add_identity=False)
        num_norms = 3 if with_self_attn else 2
        self.norms = nn.ModuleList(
            nn.LayerNorm(embed_dims) for _ in range(num_norms))
        self.dropouts = nn.ModuleList(
            nn.Dropout(dropout) for _ in range(num_norms - 1))

    def forward(self,
                query: Tensor,
                memory: Tensor,
                query_pos: Optional[Tensor] = None,
                memory_pos: Optional[Tensor] = None,
                memory_mask: Optional[Tensor] = None,
                need_logits: bool = False
                ) -> Tuple[Tensor, AttentionTerms]:
        """Refine the queries once.

        Args:
            query (Tensor): (B, N, C) queries.
            memory (Tensor): (B, L, C) encoder tokens.
            query_pos (Tensor, optional): (B, N, C) query positions, added
                to the queries and keys of the self-attention and to the
                queries of the cross-attention.
            memory_pos (Tensor, optional): (B, L, C) token positions.
            memory_mask (Tensor, optional): (B, L) bool, True at padding.
            need_logits (bool): Also compute the cross-attention logits
                (the reference path of :class:`AttentionMapCrossAttention`).

        Returns:
            tuple[Tensor, AttentionTerms]: Refined queries (B, N, C) and
            the cross-attention's projected queries (B, N, C) and keys
            (B, L, C), with its logits (B, N, h, L) if ``need_logits``.
        """
        norms, dropouts = iter(self.norms), iter(self.dropouts)
        if self.self_attn is not None:
            q = query if query_pos is None else query + query_pos
            attended = self.self_attn(q, q, query, need_weights=False)[0]
            query = next(norms)(query + next(dropouts)(attended))
        attended, terms = self.cross_attn(
            query, memory, query_pos=query_pos, memory_pos=memory_pos,
            memory_mask=memory_mask, need_logits=need_logits)
        query = next(norms)(query + next(dropouts)(attended))
        # mmcv's FFN applies its own dropout after the second linear layer
        query = next(norms)(query + self.ffn(query))
        return query, terms

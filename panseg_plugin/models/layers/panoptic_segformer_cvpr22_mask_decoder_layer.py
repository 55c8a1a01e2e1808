"""One block of the CVPR'22 (released) Panoptic SegFormer mask decoders."""
from typing import Sequence, Tuple

from mmcv.cnn.bricks.transformer import FFN
from torch import Tensor, nn

from .attention_map_cross_attention import AttentionMapCrossAttention
from .panoptic_segformer_cvpr22_mask_fusion import \
    PanopticSegFormerCVPR22MaskFusion
from .panoptic_segformer_cvpr22_self_attention import \
    PanopticSegFormerCVPR22SelfAttention


class PanopticSegFormerCVPR22MaskDecoderLayer(nn.Module):
    """Post-norm block: [self-attention], cross-attention + mask, GELU MLP.

    Differences from the v1 :class:`MaskDecoderLayer`, all from the
    authors' released code: optional fused-qkv self-attention (stuff
    decoder only), the mask comes from every block through
    :class:`PanopticSegFormerCVPR22MaskFusion`, the MLP uses GELU (exact erf
    form), LayerNorm eps is 1e-6, there is no dropout, and neither queries
    nor memory get a positional term inside the block (the decoder adds the
    query positions to the residual stream before each block). The
    cross-attention softmax runs over all tokens, without a padding mask.

    Args:
        embed_dims (int): Channels C.
        num_heads (int): Attention heads h.
        feedforward_channels (int): MLP hidden channels (1024).
        num_levels (int): Memory levels K the masks are built from.
        with_self_attn (bool): Self-attention among the queries first.
        norm_eps (float): LayerNorm eps.
    """

    def __init__(self,
                 embed_dims: int = 256,
                 num_heads: int = 8,
                 feedforward_channels: int = 1024,
                 num_levels: int = 3,
                 with_self_attn: bool = False,
                 norm_eps: float = 1e-6) -> None:
        super().__init__()
        self.embed_dims = embed_dims
        if with_self_attn:
            self.self_attn = PanopticSegFormerCVPR22SelfAttention(
                embed_dims, num_heads)
            self.self_attn_norm = nn.LayerNorm(embed_dims, eps=norm_eps)
        else:
            self.self_attn = None
        self.cross_attn = AttentionMapCrossAttention(embed_dims, num_heads)
        self.mask_fusion = PanopticSegFormerCVPR22MaskFusion(
            num_heads, num_levels)
        self.cross_attn_norm = nn.LayerNorm(embed_dims, eps=norm_eps)
        self.ffn = FFN(
            embed_dims=embed_dims,
            feedforward_channels=feedforward_channels,
            act_cfg=dict(type='GELU'),
            ffn_drop=0.0)
        self.ffn_norm = nn.LayerNorm(embed_dims, eps=norm_eps)

    def forward(self, query: Tensor, memory: Tensor,
                spatial_shapes: Sequence[Tuple[int, int]]
                ) -> Tuple[Tensor, Tensor]:
        """Refine the queries once and predict their masks.

        Args:
            query (Tensor): (B, N, C) queries, positions already added.
            memory (Tensor): (B, L, C) encoder tokens of the K mask levels.
            spatial_shapes (Sequence[tuple[int, int]]): K pairs (H_i, W_i).

        Returns:
            tuple[Tensor, Tensor]: Refined queries (B, N, C) and masks
            (B, N, H_0, W_0).
        """
        if self.self_attn is not None:
            query = self.self_attn_norm(query + self.self_attn(query))
        attended, terms = self.cross_attn(query, memory, need_logits=True)
        mask = self.mask_fusion(terms.logits, spatial_shapes)
        query = self.cross_attn_norm(query + attended)
        query = self.ffn_norm(self.ffn(query))
        return query, mask

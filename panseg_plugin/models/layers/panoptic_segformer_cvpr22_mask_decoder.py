"""The CVPR'22 (released) Panoptic SegFormer mask decoder: blocks + tail."""
from typing import List, NamedTuple, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

from .panoptic_segformer_cvpr22_mask_decoder_layer import \
    PanopticSegFormerCVPR22MaskDecoderLayer
from .panoptic_segformer_cvpr22_mask_fusion import \
    PanopticSegFormerCVPR22MaskFusion


class PanopticSegFormerCVPR22MaskDecoderOutputs(NamedTuple):
    """Outputs of :class:`PanopticSegFormerCVPR22MaskDecoder`.

    Attributes:
        tail_mask (Tensor): (B, N, H_0, W_0) mask of the tail, the one used
            at inference.
        block_masks (list[Tensor]): Per block, (B, N, H_0, W_0) masks (deep
            supervision in training).
        block_queries (list[Tensor]): Per block, (B, N, C) block outputs
            (without the position added before the next block).
    """
    tail_mask: Tensor
    block_masks: List[Tensor]
    block_queries: List[Tensor]


class PanopticSegFormerCVPR22MaskDecoder(nn.Module):
    """A stack of mask-decoder blocks followed by an attention-only tail.

    As in the authors' release: before every block and before the tail the
    query position (if any) is added to the query, and the sum stays in the
    residual stream (``query = block(query + pos)``), so a stuff query's
    position accumulates over the blocks. The tail has only q and k
    projections and the mask fusion; its mask is the final one. Thing
    decoders have no position (4 blocks, no self-attention), stuff decoders
    learn one (6 blocks with self-attention).

    Args:
        num_layers (int): Number of blocks.
        embed_dims (int): Channels C.
        num_heads (int): Attention heads h.
        feedforward_channels (int): MLP hidden channels.
        num_levels (int): Memory levels K.
        with_self_attn (bool): Blocks with self-attention (stuff decoder).
        norm_eps (float): LayerNorm eps.
    """

    def __init__(self,
                 num_layers: int = 4,
                 embed_dims: int = 256,
                 num_heads: int = 8,
                 feedforward_channels: int = 1024,
                 num_levels: int = 3,
                 with_self_attn: bool = False,
                 norm_eps: float = 1e-6) -> None:
        super().__init__()
        self.embed_dims = embed_dims
        self.num_heads = num_heads
        self.num_levels = num_levels
        self.layers = nn.ModuleList(
            PanopticSegFormerCVPR22MaskDecoderLayer(
                embed_dims=embed_dims,
                num_heads=num_heads,
                feedforward_channels=feedforward_channels,
                num_levels=num_levels,
                with_self_attn=with_self_attn,
                norm_eps=norm_eps) for _ in range(num_layers))
        self.tail_q_proj = nn.Linear(embed_dims, embed_dims)
        self.tail_k_proj = nn.Linear(embed_dims, embed_dims)
        self.tail_mask_fusion = PanopticSegFormerCVPR22MaskFusion(
            num_heads, num_levels)

    def init_weights(self) -> None:
        """Xavier-uniform for every matrix, as the authors' decoders."""
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)

    def _tail_logits(self, query: Tensor, memory: Tensor) -> Tensor:
        """(B, N, C), (B, L, C) -> pre-softmax logits (B, N, h, L)."""
        batch, num_queries, _ = query.shape
        q = self.tail_q_proj(query).view(batch, num_queries, self.num_heads,
                                         -1).transpose(1, 2)
        k = self.tail_k_proj(memory).view(batch, memory.size(1),
                                          self.num_heads, -1).transpose(1, 2)
        scale = (self.embed_dims // self.num_heads)**-0.5
        return (torch.matmul(q, k.transpose(-2, -1)) * scale).transpose(1, 2)

    def forward(
        self,
        query: Tensor,
        memory: Tensor,
        spatial_shapes: Sequence[Tuple[int, int]],
        query_pos: Optional[Tensor] = None
    ) -> PanopticSegFormerCVPR22MaskDecoderOutputs:
        """Run the blocks and the tail.

        Args:
            query (Tensor): (B, N, C) queries.
            memory (Tensor): (B, L, C) encoder tokens of the K mask levels
                (no positional encoding; padding is not masked).
            spatial_shapes (Sequence[tuple[int, int]]): K pairs (H_i, W_i)
                with ``sum(H_i W_i) = L``.
            query_pos (Tensor, optional): (B, N, C) or (1, N, C) positions.

        Returns:
            PanopticSegFormerCVPR22MaskDecoderOutputs: Tail mask, block masks
            and block queries.
        """
        if query.size(-1) != self.embed_dims or \
                memory.size(-1) != self.embed_dims:
            raise ValueError(
                f'expected {self.embed_dims} channels, got query '
                f'{tuple(query.shape)} and memory {tuple(memory.shape)}')
        block_masks, block_queries = [], []
        for layer in self.layers:
            if query_pos is not None:
                query = query + query_pos
            query, mask = layer(query, memory, spatial_shapes)
            block_masks.append(mask)
            block_queries.append(query)
        if query_pos is not None:
            query = query + query_pos
        tail_mask = self.tail_mask_fusion(
            self._tail_logits(query, memory), spatial_shapes)
        return PanopticSegFormerCVPR22MaskDecoderOutputs(
            tail_mask, block_masks, block_queries)

"""The Panoptic SegFormer mask decoder (paper section 3.4)."""
from typing import List, Optional, Tuple

from torch import Tensor, nn

from .mask_decoder_layer import MaskDecoderLayer


class MaskDecoder(nn.Module):
    """A stack of :class:`MaskDecoderLayer` returning every layer's output.

    The location-aware queries attend to the encoder tokens of the mask
    levels (stride 8/16/32). Each layer returns its refined queries and its
    cross-attention logits; the head turns the logits into masks and the
    queries into class scores (the last layer for inference, every layer for
    deep supervision in training).

    Args:
        num_layers (int): Number of layers (4 in the paper).
        embed_dims (int): Channels C.
        num_heads (int): Attention heads h.
        feedforward_channels (int): FFN hidden channels.
        dropout (float): Dropout inside each layer.
        with_self_attn (bool): Self-attention among queries in each layer.
    """

    def __init__(self,
                 num_layers: int = 4,
                 embed_dims: int = 256,
                 num_heads: int = 8,
                 feedforward_channels: int = 2048,
                 dropout: float = 0.1,
                 with_self_attn: bool = True) -> None:
        super().__init__()
        self.num_layers = num_layers
        self.embed_dims = embed_dims
        self.num_heads = num_heads
        self.layers = nn.ModuleList(
            MaskDecoderLayer(
                embed_dims=embed_dims,
                num_heads=num_heads,
                feedforward_channels=feedforward_channels,
                dropout=dropout,
                with_self_attn=with_self_attn) for _ in range(num_layers))

    def forward(
        self,
        query: Tensor,
        memory: Tensor,
        query_pos: Optional[Tensor] = None,
        memory_pos: Optional[Tensor] = None,
        memory_mask: Optional[Tensor] = None
    ) -> Tuple[List[Tensor], List[Tensor]]:
        """Run all layers.

        Args:
            query (Tensor): (B, N, C) location-aware queries.
            memory (Tensor): (B, L, C) encoder tokens of the mask levels.
            query_pos (Tensor, optional): (B, N, C) query positions.
            memory_pos (Tensor, optional): (B, L, C) token positions.
            memory_mask (Tensor, optional): (B, L) bool, True at padding.

        Returns:
            tuple[list[Tensor], list[Tensor]]: Per layer, the refined queries
            (B, N, C) and the attention logits (B, N, h, L).
        """
        if query.size(-1) != self.embed_dims or \
                memory.size(-1) != self.embed_dims:
            raise ValueError(
                f'expected {self.embed_dims} channels, got query '
                f'{tuple(query.shape)} and memory {tuple(memory.shape)}')
        queries, attn_maps = [], []
        for layer in self.layers:
            query, attn = layer(query, memory, query_pos, memory_pos,
                                memory_mask)
            queries.append(query)
            attn_maps.append(attn)
        return queries, attn_maps

"""The Panoptic SegFormer mask decoder (paper section 3.4)."""
from typing import List, Optional, Tuple

from torch import Tensor, nn

from .attention_map_cross_attention import AttentionTerms
from .mask_decoder_layer import MaskDecoderLayer


class MaskDecoder(nn.Module):
    """A stack of :class:`MaskDecoderLayer` returning every layer's output.

    The location-aware queries attend to the encoder tokens of the mask
    levels (stride 8/16/32). Each layer returns its refined queries and what
    its cross-attention map is made of (projected queries and keys, the
    logits on request); the head turns them into masks and the
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
        memory_mask: Optional[Tensor] = None,
        need_logits: bool = False
    ) -> Tuple[List[Tensor], List[AttentionTerms]]:
        """Run all layers.

        Args:
            query (Tensor): (B, N, C) location-aware queries.
            memory (Tensor): (B, L, C) encoder tokens of the mask levels.
            query_pos (Tensor, optional): (B, N, C) query positions.
            memory_pos (Tensor, optional): (B, L, C) token positions.
            memory_mask (Tensor, optional): (B, L) bool, True at padding.
            need_logits (bool): Compute every layer's attention logits
                explicitly (reference and visualisation path).

        Returns:
            tuple[list[Tensor], list[AttentionTerms]]: Per layer, the
            refined queries (B, N, C) and the cross-attention's queries
            (B, N, C), keys (B, L, C) and, if ``need_logits``, logits
            (B, N, h, L).
        """
        if query.size(-1) != self.embed_dims or \
                memory.size(-1) != self.embed_dims:
            raise ValueError(
                f'expected {self.embed_dims} channels, got query '
                f'{tuple(query.shape)} and memory {tuple(memory.shape)}')
        queries, terms = [], []
        for layer in self.layers:
            query, layer_terms = layer(query, memory, query_pos, memory_pos,
                                       memory_mask, need_logits)
            queries.append(query)
            terms.append(layer_terms)
        return queries, terms

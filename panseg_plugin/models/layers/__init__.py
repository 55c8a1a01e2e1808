from .attention_map_cross_attention import AttentionMapCrossAttention
from .mask_decoder import MaskDecoder
from .mask_decoder_layer import MaskDecoderLayer

__all__ = ['AttentionMapCrossAttention', 'MaskDecoder', 'MaskDecoderLayer']

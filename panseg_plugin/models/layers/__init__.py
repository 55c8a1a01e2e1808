from .attention_map_cross_attention import (AttentionMapCrossAttention,
                                            AttentionTerms)
from .mask_decoder import MaskDecoder
from .mask_decoder_layer import MaskDecoderLayer
from .panoptic_segformer_cvpr22_mask_decoder import (
    PanopticSegFormerCVPR22MaskDecoder,
    PanopticSegFormerCVPR22MaskDecoderOutputs)
from .panoptic_segformer_cvpr22_mask_decoder_layer import \
    PanopticSegFormerCVPR22MaskDecoderLayer
from .panoptic_segformer_cvpr22_mask_fusion import \
    PanopticSegFormerCVPR22MaskFusion
from .panoptic_segformer_cvpr22_self_attention import \
    PanopticSegFormerCVPR22SelfAttention

__all__ = [
    'AttentionMapCrossAttention', 'AttentionTerms', 'MaskDecoder',
    'MaskDecoderLayer',
    'PanopticSegFormerCVPR22MaskDecoder',
    'PanopticSegFormerCVPR22MaskDecoderOutputs',
    'PanopticSegFormerCVPR22MaskDecoderLayer',
    'PanopticSegFormerCVPR22MaskFusion',
    'PanopticSegFormerCVPR22SelfAttention'
]

from .panoptic_segformer_cvpr22_fusion_head import \
    PanopticSegFormerCVPR22FusionHead
from .panoptic_segformer_fusion_head import PanopticSegFormerFusionHead

__all__ = ['PanopticSegFormerFusionHead', 'PanopticSegFormerCVPR22FusionHead']

from .panoptic_segformer_fusion_head import PanopticSegFormerFusionHead

__all__ = ['PanopticSegFormerFusionHead']

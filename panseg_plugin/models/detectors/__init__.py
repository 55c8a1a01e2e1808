from .panoptic_segformer import PanopticSegFormer
from .panoptic_segformer_cvpr22 import PanopticSegFormerCVPR22

__all__ = ['PanopticSegFormer', 'PanopticSegFormerCVPR22']

from .panoptic_segformer_assigner import PanopticSegFormerAssigner
from .panoptic_segformer_cvpr22_dice_cost import \
    PanopticSegFormerCVPR22DiceCost

__all__ = ['PanopticSegFormerAssigner', 'PanopticSegFormerCVPR22DiceCost']

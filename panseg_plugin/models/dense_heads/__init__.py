from .panoptic_segformer_cvpr22_head import (PanopticSegFormerCVPR22Candidates,
                                             PanopticSegFormerCVPR22Head)
from .panoptic_segformer_head import (PanopticSegFormerHead,
                                      PanopticSegFormerHeadOutputs)

__all__ = [
    'PanopticSegFormerHead', 'PanopticSegFormerHeadOutputs',
    'PanopticSegFormerCVPR22Candidates', 'PanopticSegFormerCVPR22Head'
]

from .panoptic_segformer_head import (PanopticSegFormerHead,
                                      PanopticSegFormerHeadOutputs)

__all__ = ['PanopticSegFormerHead', 'PanopticSegFormerHeadOutputs']

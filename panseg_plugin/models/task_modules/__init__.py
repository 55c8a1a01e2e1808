from .panoptic_segformer_assigner import PanopticSegFormerAssigner

__all__ = ['PanopticSegFormerAssigner']

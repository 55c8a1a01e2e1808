from .panoptic_segformer import PanopticSegFormer

__all__ = ['PanopticSegFormer']

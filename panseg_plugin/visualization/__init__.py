from .gt_panoptic import gt_panoptic_seg
from .panoptic_segformer_visualizer import PanopticSegFormerVisualizer

__all__ = ['PanopticSegFormerVisualizer', 'gt_panoptic_seg']

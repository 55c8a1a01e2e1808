from .panoptic_segformer_coco_panoptic_metric import \
    PanopticSegFormerCocoPanopticMetric

__all__ = ['PanopticSegFormerCocoPanopticMetric']

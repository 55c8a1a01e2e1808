from .metrics import PanopticSegFormerCocoPanopticMetric

__all__ = ['PanopticSegFormerCocoPanopticMetric']

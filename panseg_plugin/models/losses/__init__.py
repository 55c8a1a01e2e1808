from .panoptic_segformer_location_loss import PanopticSegFormerLocationLoss

__all__ = ['PanopticSegFormerLocationLoss']

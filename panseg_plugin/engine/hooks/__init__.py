from .panoptic_segformer_data_check_hook import PanopticSegFormerDataCheckHook

__all__ = ['PanopticSegFormerDataCheckHook']

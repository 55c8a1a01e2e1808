from .panoptic_segformer_checkpoint_hook import PanopticSegFormerCheckpointHook
from .panoptic_segformer_data_check_hook import PanopticSegFormerDataCheckHook
from .panoptic_segformer_resume_hook import PanopticSegFormerResumeStateHook

__all__ = [
    'PanopticSegFormerCheckpointHook', 'PanopticSegFormerDataCheckHook',
    'PanopticSegFormerResumeStateHook'
]

from .atomic_checkpoint_hook import AtomicCheckpointHook
from .exact_resume_hook import ExactResumeHook
from .panoptic_data_check_hook import PanopticDataCheckHook

__all__ = ['AtomicCheckpointHook', 'ExactResumeHook', 'PanopticDataCheckHook']

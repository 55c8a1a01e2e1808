from ..utils.scripts import load_script
from .tiny_model import (demo_panoptic_batch, tiny_panoptic_segformer_cfg,
                         untrained_model)

__all__ = [
    'demo_panoptic_batch', 'load_script', 'tiny_panoptic_segformer_cfg',
    'untrained_model'
]

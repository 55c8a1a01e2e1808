from .tiny_model import demo_panoptic_batch, tiny_panoptic_segformer_cfg

__all__ = ['demo_panoptic_batch', 'tiny_panoptic_segformer_cfg']

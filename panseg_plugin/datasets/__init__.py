from .toy_panoptic import TOY_METAINFO, make_toy_panoptic

__all__ = ['TOY_METAINFO', 'make_toy_panoptic']

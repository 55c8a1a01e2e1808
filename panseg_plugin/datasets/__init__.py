from .panoptic_segformer_coco_panoptic import \
    PanopticSegFormerCocoPanopticDataset
from .toy_panoptic import TOY_METAINFO, make_toy_panoptic
from .transforms import (PanopticSegFormerCorruptFileError,
                         PanopticSegFormerLoadImageFromFile,
                         PanopticSegFormerLoadPanopticAnnotations)

__all__ = [
    'PanopticSegFormerCocoPanopticDataset', 'TOY_METAINFO',
    'make_toy_panoptic', 'PanopticSegFormerCorruptFileError',
    'PanopticSegFormerLoadImageFromFile',
    'PanopticSegFormerLoadPanopticAnnotations'
]

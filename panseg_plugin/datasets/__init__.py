from .panoptic_file_check import (FileProblem, check_dataset_files,
                                  check_panoptic_files)
from .panoptic_segformer_ade20k_panoptic import \
    PanopticSegFormerADE20KPanopticDataset
from .panoptic_segformer_cityscapes_panoptic import \
    PanopticSegFormerCityscapesPanopticDataset
from .panoptic_segformer_coco_panoptic import \
    PanopticSegFormerCocoPanopticDataset
from .transforms import (PanopticSegFormerCorruptFileError,
                         PanopticSegFormerLoadPanopticAnnotations,
                         PanopticSegFormerSizeMismatchError)

__all__ = [
    'FileProblem', 'PanopticSegFormerADE20KPanopticDataset',
    'PanopticSegFormerCityscapesPanopticDataset',
    'PanopticSegFormerCocoPanopticDataset',
    'PanopticSegFormerCorruptFileError',
    'PanopticSegFormerLoadPanopticAnnotations',
    'PanopticSegFormerSizeMismatchError', 'check_dataset_files',
    'check_panoptic_files'
]

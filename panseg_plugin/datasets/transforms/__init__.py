from .loading import (PanopticSegFormerCorruptFileError,
                      PanopticSegFormerLoadPanopticAnnotations,
                      PanopticSegFormerSizeMismatchError, find_corrupt_file)

__all__ = [
    'PanopticSegFormerCorruptFileError',
    'PanopticSegFormerLoadPanopticAnnotations',
    'PanopticSegFormerSizeMismatchError', 'find_corrupt_file'
]

from .loading import (PanopticSegFormerCorruptFileError,
                      PanopticSegFormerLoadImageFromFile,
                      PanopticSegFormerLoadPanopticAnnotations)

__all__ = [
    'PanopticSegFormerCorruptFileError', 'PanopticSegFormerLoadImageFromFile',
    'PanopticSegFormerLoadPanopticAnnotations'
]

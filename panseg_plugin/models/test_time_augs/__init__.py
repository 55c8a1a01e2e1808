from .panoptic_segformer_tta_model import PanopticSegFormerTTAModel
from .segment_clustering import cluster_view_segments, fuse_clusters

__all__ = [
    'PanopticSegFormerTTAModel', 'cluster_view_segments', 'fuse_clusters'
]

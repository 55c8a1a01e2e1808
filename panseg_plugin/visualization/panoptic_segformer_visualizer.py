"""mmdet's visualizer, safe on panoptic results without any segment."""
from typing import List, Optional

import numpy as np
from mmdet.registry import VISUALIZERS
from mmdet.visualization import DetLocalVisualizer
from mmengine.structures import PixelData


@VISUALIZERS.register_module()
class PanopticSegFormerVisualizer(DetLocalVisualizer):
    """:class:`DetLocalVisualizer` that draws any panoptic map.

    mmdet 3.3's ``_draw_panoptic_seg`` (1) stacks the areas of the drawn
    segments and fails with "need at least one array to stack" when a
    prediction (or a ground truth) has no segment, e.g. when no query clears
    the score threshold, and (2) fails on a ground-truth map held as a
    tensor (it converts only predictions to numpy). An all-void map is drawn
    here as the bare image, tensors are converted, and every other map is
    drawn by mmdet unchanged. Arguments are mmdet's.
    """

    def _draw_panoptic_seg(self, image: np.ndarray, panoptic_seg: PixelData,
                           classes: Optional[List[str]],
                           palette: Optional[List]) -> np.ndarray:
        if not isinstance(panoptic_seg.sem_seg, np.ndarray):
            panoptic_seg = panoptic_seg.cpu().numpy()
        ids = np.unique(panoptic_seg.sem_seg[0])
        void = panoptic_seg.metainfo.get('ignore_index', len(classes)) \
            if 'label_names' in panoptic_seg else len(classes)
        if (ids == void).all():
            self.set_image(image)
            return self.get_image()
        return super()._draw_panoptic_seg(image, panoptic_seg, classes,
                                          palette)

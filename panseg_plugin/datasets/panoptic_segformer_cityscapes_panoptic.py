"""Cityscapes panoptic (19 classes: 8 things, 11 stuff) with the checks of
:class:`PanopticSegFormerCocoPanopticDataset`."""
from mmdet.registry import DATASETS

from .panoptic_segformer_coco_panoptic import \
    PanopticSegFormerCocoPanopticDataset


@DATASETS.register_module()
class PanopticSegFormerCityscapesPanopticDataset(
        PanopticSegFormerCocoPanopticDataset):
    """Cityscapes panoptic in COCO panoptic format.

    The files are those of cityscapesScripts' ``createPanopticImgs``, as
    ``tools/dataset_converters/cityscapes_panoptic.py`` runs and completes
    it (``cityscapes_panoptic_{train,val}.json``, PNG folders next to them,
    image paths ``<city>/<name>_leftImg8bit.png`` under
    ``leftImg8bit/<split>/``). The 19 evaluated classes are
    cityscapesScripts' labels with ``ignoreInEval`` false, things
    (``hasInstances``) first, with their colours; the JSON's category ids
    (label ids, or train ids with ``--use-train-id``) do not matter, as
    categories are matched by name. Other labels (``ignoreInEval``) are
    void, and pixels of a thing class without an instance id are a crowd
    segment of that class.
    """

    METAINFO = dict(
        classes=('person', 'rider', 'car', 'truck', 'bus', 'train',
                 'motorcycle', 'bicycle', 'road', 'sidewalk', 'building',
                 'wall', 'fence', 'pole', 'traffic light', 'traffic sign',
                 'vegetation', 'terrain', 'sky'),
        thing_classes=('person', 'rider', 'car', 'truck', 'bus', 'train',
                       'motorcycle', 'bicycle'),
        stuff_classes=('road', 'sidewalk', 'building', 'wall', 'fence',
                       'pole', 'traffic light', 'traffic sign',
                       'vegetation', 'terrain', 'sky'),
        palette=[(220, 20, 60), (255, 0, 0), (0, 0, 142), (0, 0, 70),
                 (0, 60, 100), (0, 80, 100), (0, 0, 230), (119, 11, 32),
                 (128, 64, 128), (244, 35, 232), (70, 70, 70),
                 (102, 102, 156), (190, 153, 153), (153, 153, 153),
                 (250, 170, 30), (220, 220, 0), (107, 142, 35),
                 (152, 251, 152), (70, 130, 180)])

"""ADE20K panoptic (150 classes: 100 things, 50 stuff) with the checks of
:class:`PanopticSegFormerCocoPanopticDataset`."""
from mmdet.datasets import ADE20KPanopticDataset
from mmdet.registry import DATASETS

from .panoptic_segformer_coco_panoptic import \
    PanopticSegFormerCocoPanopticDataset


@DATASETS.register_module()
class PanopticSegFormerADE20KPanopticDataset(
        PanopticSegFormerCocoPanopticDataset):
    """ADE20K panoptic in COCO panoptic format.

    The files are those of mmdet's ``ADE20KPanopticDataset``
    (``ade20k_panoptic_{train,val}.json`` and PNG folders written by mmdet's
    ``tools/dataset_converters/ade20k2coco.py`` from the SceneParsing
    release and its instance annotations), and so are the class names,
    thing/stuff split and palette (``METAINFO``). Categories are matched by
    name and every bad file gets the messages of
    :class:`PanopticSegFormerCocoPanopticDataset`.
    """

    METAINFO = ADE20KPanopticDataset.METAINFO

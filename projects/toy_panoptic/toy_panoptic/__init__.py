"""The toy panoptic project's own package: the synthetic data set, its
metainfo and the backbone pretraining on its things.

The scripts next to this folder (``quickstart.py``, ``pretrain_backbone.py``,
``benchmark_mask2former.py``) import it by name, as Python puts a script's
folder on the import path; the configs inherit :mod:`.metainfo` as a config
fragment and need no import. Nothing here is registered: the models are the
plugin's (``custom_imports=['panseg_plugin']``) and mmdet's.
"""
from .generator import CATEGORIES, make_toy_panoptic, split_paths
from .metainfo import metainfo as TOY_METAINFO
from .pretrain import pretrain_backbone

__all__ = [
    'CATEGORIES', 'TOY_METAINFO', 'make_toy_panoptic', 'pretrain_backbone',
    'split_paths'
]

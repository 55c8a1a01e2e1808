"""Panoptic SegFormer as an MMDetection 3.x plugin.

Importing the package checks the OpenMMLab versions, registers every class
of the plugin into mmdet's registries under names of its own, and adds the
data-only types of mmengine's checkpoints to torch's safe-loading allow list
(:mod:`panseg_plugin.utils.checkpoint_safety`). Nothing of torch, mmengine,
mmdet or panopticapi is replaced. A config only needs::

    custom_imports = dict(imports=['panseg_plugin'],
                          allow_failed_imports=False)
"""
from .utils import allow_mmengine_checkpoint_types, check_versions
from .version import __version__

check_versions()
allow_mmengine_checkpoint_types()

from . import (datasets, engine, evaluation, models,  # noqa: E402,F401
               visualization)

__all__ = ['__version__']

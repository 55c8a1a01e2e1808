"""Panoptic SegFormer as an MMDetection 3.x plugin.

Importing the package checks the OpenMMLab versions, keeps mmengine's
checkpoints loadable on torch >= 2.6 and registers every class of the
plugin into mmdet's registries. A config only needs::

    custom_imports = dict(imports=['panseg_plugin'],
                          allow_failed_imports=False)
"""
from .utils.env_check import check_versions, patch_checkpoint_loading
from .version import __version__

check_versions()
patch_checkpoint_loading()

from . import (apis, datasets, engine, evaluation, models,  # noqa: E402,F401
               visualization)

__all__ = ['__version__']

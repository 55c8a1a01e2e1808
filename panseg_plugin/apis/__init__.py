"""Inference through mmdet's own ``DetInferencer``.

Importing this package lets ``DetInferencer`` run configs whose test
pipeline loads images with a subclass of ``LoadImageFromFile`` (see
:mod:`.inference_pipeline`); nothing else of mmdet's inference changes.
"""
from .inference_pipeline import inference_pipeline_cfg, patch_det_inferencer

patch_det_inferencer()

__all__ = ['inference_pipeline_cfg', 'patch_det_inferencer']

"""mmdet's ``DetInferencer`` on test pipelines with a derived image loader.

``DetInferencer._init_pipeline`` swaps the test pipeline's image loader
for ``mmdet.InferencerLoader`` (which accepts paths and arrays), but it
finds the loader by the exact type name ``'LoadImageFromFile'``. With any
subclass in its place, e.g. the plugin's
``PanopticSegFormerLoadImageFromFile``, it raises "LoadImageFromFile is
not found in the test pipeline". The loader is replaced for inference
anyway, so the fix is to name such a subclass ``LoadImageFromFile`` (its
arguments are mmcv's) before mmdet's own method runs. A pipeline mmdet
already handles is left unchanged.
"""
import copy
from typing import List, Optional

from mmcv.transforms import LoadImageFromFile
from mmdet.apis import DetInferencer
from mmdet.registry import TRANSFORMS

_PATCHED = '_panseg_inference_pipeline'


def _transform_class(transform_type) -> Optional[type]:
    """The class a pipeline step's ``type`` names (None if unknown)."""
    if isinstance(transform_type, type):
        return transform_type
    return TRANSFORMS.get(transform_type)


def inference_pipeline_cfg(pipeline_cfg: List[dict]) -> List[dict]:
    """A test pipeline config that ``DetInferencer`` can take.

    Args:
        pipeline_cfg (list[dict]): Test pipeline config.

    Returns:
        list[dict]: ``pipeline_cfg`` itself if a step is of type
        ``'LoadImageFromFile'`` or none derives from mmcv's
        ``LoadImageFromFile``; otherwise a copy where the first step deriving
        from it is of type ``'LoadImageFromFile'``, its arguments unchanged.
    """
    if any(step.get('type') == 'LoadImageFromFile' for step in pipeline_cfg):
        return pipeline_cfg
    for i, step in enumerate(pipeline_cfg):
        cls = _transform_class(step.get('type'))
        if cls is not None and issubclass(cls, LoadImageFromFile):
            pipeline_cfg = copy.deepcopy(pipeline_cfg)
            pipeline_cfg[i]['type'] = 'LoadImageFromFile'
            return pipeline_cfg
    return pipeline_cfg


def patch_det_inferencer() -> None:
    """Make ``DetInferencer`` accept subclasses of ``LoadImageFromFile`` in
    the test pipeline (idempotent). Loading the model, drawing and saving
    stay mmdet's."""
    original = DetInferencer._init_pipeline
    if getattr(original, _PATCHED, False):
        return

    def _init_pipeline(self, cfg):
        dataset = cfg.test_dataloader.dataset
        dataset.pipeline = inference_pipeline_cfg(dataset.pipeline)
        return original(self, cfg)

    setattr(_init_pipeline, _PATCHED, True)
    _init_pipeline.__doc__ = original.__doc__
    DetInferencer._init_pipeline = _init_pipeline

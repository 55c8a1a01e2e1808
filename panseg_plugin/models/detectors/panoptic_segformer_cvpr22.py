"""The CVPR'22 (released) Panoptic SegFormer detector."""
from typing import Dict, Tuple

from mmdet.models.detectors import DeformableDETR
from mmdet.registry import MODELS
from mmdet.structures import SampleList
from mmdet.utils import ConfigType
from torch import Tensor

from ..utils.panoptic_segformer_cvpr22_checkpoint import (
    convert_official_state_dict, is_official_state_dict,
    official_backbone_converter)


@MODELS.register_module()
class PanopticSegFormerCVPR22(DeformableDETR):
    """Panoptic SegFormer as the authors released it (CVPR'22 version).

    The backbone, neck, encoder and location decoder are mmdet's Deformable
    DETR with iterative box refinement, unchanged (300 queries, 4 levels);
    ``bbox_head`` (:class:`PanopticSegFormerCVPR22Head`) adds the thing and
    stuff mask decoders on the encoder memory, and ``panoptic_fusion_head``
    (:class:`PanopticSegFormerCVPR22FusionHead`) merges the candidates.
    This is the architecture of the five checkpoints of the authors'
    release, which differs from the v1 paper that
    :class:`PanopticSegFormer` implements.

    Args:
        panoptic_fusion_head (dict): Fusion head config.
        *args, **kwargs: :class:`DeformableDETR` arguments;
            ``with_box_refine`` must be True and ``as_two_stage`` False.
    """

    def __init__(self, *args, panoptic_fusion_head: ConfigType,
                 **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if not self.with_box_refine or self.as_two_stage:
            raise ValueError('the released architecture uses box refinement '
                             'without two-stage: set with_box_refine=True, '
                             'as_two_stage=False')
        self.panoptic_fusion_head = MODELS.build(panoptic_fusion_head)
        head, fusion = self.bbox_head, self.panoptic_fusion_head
        if (head.num_classes, head.num_stuff_classes) != (
                fusion.num_things_classes, fusion.num_stuff_classes):
            raise ValueError(
                f'bbox_head has {head.num_classes} thing + '
                f'{head.num_stuff_classes} stuff classes, '
                f'panoptic_fusion_head {fusion.num_things_classes} + '
                f'{fusion.num_stuff_classes}')
        if head.num_mask_levels > self.num_feature_levels:
            raise ValueError(f'bbox_head.num_mask_levels='
                             f'{head.num_mask_levels} exceeds '
                             f'num_feature_levels={self.num_feature_levels}')

    def _load_from_state_dict(self, state_dict: dict, prefix: str, *args,
                              **kwargs) -> None:
        """Convert the authors' released keys in memory before loading.

        ``load_from`` / ``DetInferencer(weights=...)`` may point at a
        released ``.pth`` directly: keys in the authors' names (either
        generation, ``module.`` already stripped or not) are converted here,
        the dead branches dropped, everything else refused by name.
        Converted plugin checkpoints load unchanged.
        """
        if is_official_state_dict(state_dict, prefix):
            own = [key for key in state_dict if key.startswith(prefix)]
            official = {key[len(prefix):]: state_dict.pop(key) for key in own}
            converted = convert_official_state_dict(
                official,
                official_backbone_converter(type(self.backbone).__name__))
            state_dict.update(
                (prefix + key, value) for key, value in converted.items())
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def pre_decoder(self, memory: Tensor, memory_mask: Tensor,
                    spatial_shapes: Tensor) -> Tuple[Dict, Dict]:
        """Deformable DETR's queries; the head also gets the memory.

        Returns:
            tuple[dict, dict]: Decoder inputs and head inputs, the latter
            with ``memory`` (B, L, C) and ``spatial_shapes`` (levels, 2).
        """
        decoder_inputs_dict, head_inputs_dict = super().pre_decoder(
            memory, memory_mask, spatial_shapes)
        head_inputs_dict.update(memory=memory, spatial_shapes=spatial_shapes)
        return decoder_inputs_dict, head_inputs_dict

    def predict(self,
                batch_inputs: Tensor,
                batch_data_samples: SampleList,
                rescale: bool = True) -> SampleList:
        """Panoptic (``pred_panoptic_seg``) and instance (``pred_instances``)
        results in mmdet's conventions.

        Args:
            batch_inputs (Tensor): (B, 3, H, W) images.
            batch_data_samples (list[DetDataSample]): Their meta information.
            rescale (bool): Results at ``ori_shape``.
        """
        img_feats = self.extract_feat(batch_inputs)
        head_inputs_dict = self.forward_transformer(img_feats,
                                                    batch_data_samples)
        candidates = self.bbox_head.predict(
            **head_inputs_dict, batch_data_samples=batch_data_samples)
        results = self.panoptic_fusion_head.predict(
            *candidates[:6], batch_data_samples, rescale=rescale)
        for data_sample, result in zip(batch_data_samples, results):
            if 'pan_results' in result:
                data_sample.pred_panoptic_seg = result['pan_results']
            if 'ins_results' in result:
                data_sample.pred_instances = result['ins_results']
        return batch_data_samples

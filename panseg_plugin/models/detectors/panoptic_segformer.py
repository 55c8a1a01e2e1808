"""The Panoptic SegFormer detector (arXiv 2109.03814 v1)."""
import copy
from typing import Dict, Tuple

import torch
from mmdet.models.detectors import DeformableDETR
from mmdet.registry import MODELS
from mmdet.structures import SampleList
from mmdet.utils import ConfigType, OptConfigType, OptMultiConfig
from torch import Tensor, nn


@MODELS.register_module()
class PanopticSegFormer(DeformableDETR):
    """Panoptic SegFormer: backbone -> neck -> deformable encoder ->
    location decoder -> mask decoder -> mask-wise merging.

    A :class:`DeformableDETR` (single stage, no box refinement) whose
    ``bbox_head`` (:class:`PanopticSegFormerHead`: location MLP, mask
    decoder and losses) takes the location decoder's queries and whose
    ``panoptic_fusion_head`` (:class:`PanopticSegFormerFusionHead`) merges
    the class and mask logits mask-wise. The encoder plumbing (padding
    masks, sine positional encoding plus level embedding, valid ratios),
    the learned queries and their reference points and the location
    decoder are Deformable DETR's, inherited unchanged; what differs:

    * the encoder's positional encodings also go to the head (the mask
      decoder may use them for its keys), and the head receives the query
      positions, the memory and its padding mask;
    * ``predict`` fuses masks into panoptic and instance results.

    Feature levels: 4 by default as in Deformable DETR (C3-C5 plus a
    stride-64 level from the neck); the encoder and location decoder use all
    of them and the mask decoder the first ``bbox_head.num_mask_levels``
    (stride 8/16/32). Any number of levels works.

    Args:
        backbone, neck, encoder, decoder, positional_encoding (dict): As in
            :class:`DeformableDETR`; the decoder must return its
            intermediate states (``return_intermediate=True``).
        bbox_head (dict): :class:`PanopticSegFormerHead` config.
        panoptic_fusion_head (dict): :class:`PanopticSegFormerFusionHead`
            config.
        num_queries (int): N, 400 for panoptic, 300 for instance mode.
        num_feature_levels (int): Levels given by the neck.
        train_cfg (dict, optional): Holds the head's ``assigner``.
        test_cfg (dict, optional): Must be empty: post-processing
            thresholds are arguments of ``panoptic_fusion_head``.
        data_preprocessor, init_cfg: As in mmdet.
    """

    def __init__(self,
                 *,
                 backbone: ConfigType,
                 neck: ConfigType,
                 encoder: ConfigType,
                 decoder: ConfigType,
                 positional_encoding: ConfigType,
                 bbox_head: ConfigType,
                 panoptic_fusion_head: ConfigType,
                 num_queries: int = 400,
                 num_feature_levels: int = 4,
                 train_cfg: OptConfigType = None,
                 test_cfg: OptConfigType = None,
                 data_preprocessor: OptConfigType = None,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(
            backbone=backbone,
            neck=neck,
            encoder=encoder,
            decoder=decoder,
            positional_encoding=positional_encoding,
            # a copy: DeformableDETR writes its settings into the head's
            # config, and the caller's config must build again unchanged
            bbox_head=copy.deepcopy(bbox_head),
            num_queries=num_queries,
            num_feature_levels=num_feature_levels,
            with_box_refine=False,
            as_two_stage=False,
            train_cfg=train_cfg,
            test_cfg=test_cfg,
            data_preprocessor=data_preprocessor,
            init_cfg=init_cfg)
        self.panoptic_fusion_head = MODELS.build(panoptic_fusion_head)
        self._check_consistency()

    def _init_layers(self) -> None:
        """Deformable DETR's layers, with the level embedding initialised
        at once: a model built without ``init_weights`` (tests, inference
        before loading weights) must not start from uninitialised memory,
        which may hold NaN."""
        super()._init_layers()
        nn.init.normal_(self.level_embed)

    def _check_consistency(self) -> None:
        """Fail at build time on configs whose parts disagree; each
        message names the config key to set."""
        head, fusion = self.bbox_head, self.panoptic_fusion_head
        problems = []
        if (head.num_things_classes, head.num_stuff_classes) != (
                fusion.num_things_classes, fusion.num_stuff_classes):
            problems.append(
                f'model.bbox_head has {head.num_things_classes} things + '
                f'{head.num_stuff_classes} stuff classes but '
                f'model.panoptic_fusion_head has '
                f'{fusion.num_things_classes} + {fusion.num_stuff_classes}: '
                f'set the same num_things_classes and num_stuff_classes in '
                f'both')
        if not self.decoder.return_intermediate:
            problems.append('model.decoder.return_intermediate must be True '
                            '(the head reads the last layer of the stack)')
        attn = self.encoder.layers[0].self_attn
        if attn.num_levels != self.num_feature_levels:
            problems.append(
                f'model.encoder attention uses {attn.num_levels} levels, '
                f'model.num_feature_levels is {self.num_feature_levels}')
        num_outs = getattr(getattr(self, 'neck', None), 'num_outs', None)
        if num_outs is not None and num_outs != self.num_feature_levels:
            problems.append(f'model.neck.num_outs={num_outs} but '
                            f'model.num_feature_levels='
                            f'{self.num_feature_levels}')
        if head.num_mask_levels > self.num_feature_levels:
            problems.append(
                f'model.bbox_head.num_mask_levels={head.num_mask_levels} '
                f'exceeds model.num_feature_levels')
        if head.embed_dims != self.embed_dims:
            problems.append(f'model.bbox_head.embed_dims={head.embed_dims} '
                            f'but the encoder has {self.embed_dims}')
        if problems:
            raise ValueError('Inconsistent PanopticSegFormer config:\n  ' +
                             '\n  '.join(problems))

    def forward_encoder(self, feat: Tensor, feat_mask: Tensor,
                        feat_pos: Tensor, spatial_shapes: Tensor,
                        level_start_index: Tensor,
                        valid_ratios: Tensor) -> Dict:
        """Deformable DETR's encoder over all levels.

        Args:
            feat (Tensor): (B, L, C) flattened features.
            feat_mask (Tensor): (B, L) bool, True at padding.
            feat_pos (Tensor): (B, L, C) positional + level embeddings.
            spatial_shapes (Tensor): (num_levels, 2).
            level_start_index (Tensor): (num_levels,).
            valid_ratios (Tensor): (B, num_levels, 2).

        Returns:
            dict: ``memory`` (B, L, C), ``memory_mask``, ``spatial_shapes``
            and ``memory_pos`` (``feat_pos``, for the mask decoder's keys).
        """
        if self.encoder.num_cp > 0 and torch.is_grad_enabled() and \
                feat.device.type == 'cpu' and _cpu_autocast_enabled():
            # fairscale recomputes the layers without the CPU autocast:
            # the backward pass would fail on mixed dtypes
            raise RuntimeError(
                'model.encoder.num_cp (encoder checkpointing, fairscale) '
                'does not work with CPU mixed precision (--amp on the '
                'CPU): fairscale runs the layers again without CPU '
                'autocast. Train on the CPU without --amp, or set '
                'model.encoder.num_cp=-1')
        outputs = super().forward_encoder(feat, feat_mask, feat_pos,
                                          spatial_shapes, level_start_index,
                                          valid_ratios)
        outputs['memory_pos'] = feat_pos
        return outputs

    def pre_decoder(self, memory: Tensor, memory_mask: Tensor,
                    spatial_shapes: Tensor,
                    memory_pos: Tensor) -> Tuple[Dict, Dict]:
        """Deformable DETR's learned queries and reference points.

        Returns:
            tuple[dict, dict]: Location decoder inputs (``query``,
            ``query_pos`` (B, N, C), ``memory``, ``reference_points``
            (B, N, 2)) and the head inputs known so far (``query_pos``,
            ``memory``, ``memory_mask``, ``memory_pos``,
            ``spatial_shapes``).
        """
        decoder_inputs_dict, _ = super().pre_decoder(memory, memory_mask,
                                                     spatial_shapes)
        head_inputs_dict = dict(
            query_pos=decoder_inputs_dict['query_pos'],
            memory=memory,
            memory_mask=memory_mask,
            memory_pos=memory_pos,
            spatial_shapes=spatial_shapes)
        return decoder_inputs_dict, head_inputs_dict

    def predict(self,
                batch_inputs: Tensor,
                batch_data_samples: SampleList,
                rescale: bool = True) -> SampleList:
        """Panoptic (``pred_panoptic_seg``), instance (``pred_instances``)
        and semantic (``pred_sem_seg``) results for a batch, in mmdet's
        conventions, as the fusion head's ``panoptic_on``, ``instance_on``
        and ``semantic_on`` ask.

        Args:
            batch_inputs (Tensor): (B, 3, H, W) padded images.
            batch_data_samples (list[DetDataSample]): Their meta information.
            rescale (bool): Resize results to the original image size.
        """
        img_feats = self.extract_feat(batch_inputs)
        head_inputs_dict = self.forward_transformer(img_feats,
                                                    batch_data_samples)
        cls_scores, mask_preds = self.bbox_head.predict(**head_inputs_dict)
        results = self.panoptic_fusion_head.predict(
            cls_scores, mask_preds, batch_data_samples, rescale=rescale)
        for data_sample, result in zip(batch_data_samples, results):
            if 'pan_results' in result:
                data_sample.pred_panoptic_seg = result['pan_results']
            if 'ins_results' in result:
                data_sample.pred_instances = result['ins_results']
            if 'sem_results' in result:
                data_sample.pred_sem_seg = result['sem_results']
        return batch_data_samples


def _cpu_autocast_enabled() -> bool:
    """Whether CPU autocast is on (torch >= 2.4 and older spellings)."""
    try:
        return torch.is_autocast_enabled('cpu')
    except TypeError:
        return torch.is_autocast_cpu_enabled()

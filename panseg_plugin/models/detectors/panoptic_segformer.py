"""The Panoptic SegFormer detector (arXiv 2109.03814 v1)."""
from typing import Dict, Tuple

import torch
from mmcv.cnn.bricks.transformer import MultiScaleDeformableAttention
from mmdet.models.detectors import DeformableDETR, DetectionTransformer
from mmdet.models.layers import (DeformableDetrTransformerDecoder,
                                 DeformableDetrTransformerEncoder,
                                 SinePositionalEncoding)
from mmdet.registry import MODELS
from mmdet.structures import SampleList
from mmdet.utils import ConfigType
from torch import Tensor, nn


@MODELS.register_module()
class PanopticSegFormer(DetectionTransformer):
    """Panoptic SegFormer: backbone -> neck -> deformable encoder ->
    location decoder -> mask decoder -> mask-wise merging.

    Follows mmdet's DETR template ``pre_transformer -> forward_encoder ->
    pre_decoder -> forward_decoder``. The encoder plumbing (padding masks,
    sine positional encoding plus a learned level embedding, valid ratios) is
    Deformable DETR's and is reused from :class:`DeformableDETR` as is. The
    location decoder is Deformable DETR's decoder (6 layers, reference points
    from the query positions, no box refinement); its queries go to
    ``bbox_head`` (:class:`PanopticSegFormerHead`, the mask decoder and the
    losses), whose class and mask logits ``panoptic_fusion_head``
    (:class:`PanopticSegFormerFusionHead`) merges mask-wise.

    Feature levels: 4 by default as in Deformable DETR (C3-C5 plus a
    stride-64 level from the neck); the encoder and location decoder use all
    of them and the mask decoder the first ``bbox_head.num_mask_levels``
    (stride 8/16/32). Any number of levels works.

    Args:
        backbone, neck, encoder, decoder, positional_encoding (dict): As in
            :class:`DeformableDETR`.
        bbox_head (dict): :class:`PanopticSegFormerHead` config.
        panoptic_fusion_head (dict): :class:`PanopticSegFormerFusionHead`
            config.
        num_queries (int): N, 400 for panoptic, 300 for instance mode.
        num_feature_levels (int): Levels given by the neck.
        train_cfg, test_cfg, data_preprocessor, init_cfg: As in mmdet.
    """

    # Deformable DETR's input flattening (masks, positions, valid ratios).
    pre_transformer = DeformableDETR.pre_transformer
    get_valid_ratio = staticmethod(DeformableDETR.get_valid_ratio)

    def __init__(self,
                 *args,
                 panoptic_fusion_head: ConfigType,
                 num_feature_levels: int = 4,
                 **kwargs) -> None:
        self.num_feature_levels = num_feature_levels
        super().__init__(*args, **kwargs)
        self.panoptic_fusion_head = MODELS.build(panoptic_fusion_head)
        self._check_consistency()

    def _init_layers(self) -> None:
        """Encoder, location decoder, queries and level embeddings."""
        self.positional_encoding = SinePositionalEncoding(
            **self.positional_encoding)
        self.encoder = DeformableDetrTransformerEncoder(**self.encoder)
        self.decoder = DeformableDetrTransformerDecoder(**self.decoder)
        self.embed_dims = self.encoder.embed_dims
        # split into (query_pos, query) in pre_decoder, as Deformable DETR
        self.query_embedding = nn.Embedding(self.num_queries,
                                            self.embed_dims * 2)
        # Initialised here, not only in init_weights: a model built without
        # init_weights (tests, inference without weights) must not start
        # from uninitialised memory, which may hold NaN.
        self.level_embed = nn.Parameter(
            torch.randn(self.num_feature_levels, self.embed_dims))
        self.reference_points_fc = nn.Linear(self.embed_dims, 2)

    def _check_consistency(self) -> None:
        """Fail at build time on configs whose parts disagree."""
        head, fusion = self.bbox_head, self.panoptic_fusion_head
        problems = []
        if (head.num_things_classes, head.num_stuff_classes) != (
                fusion.num_things_classes, fusion.num_stuff_classes):
            problems.append(
                f'bbox_head has {head.num_things_classes} things + '
                f'{head.num_stuff_classes} stuff classes but '
                f'panoptic_fusion_head has {fusion.num_things_classes} + '
                f'{fusion.num_stuff_classes}')
        if self.positional_encoding.num_feats * 2 != self.embed_dims:
            problems.append('positional_encoding.num_feats must be '
                            f'embed_dims / 2 = {self.embed_dims // 2}')
        attn = self.encoder.layers[0].self_attn
        if attn.num_levels != self.num_feature_levels:
            problems.append(f'encoder attention uses {attn.num_levels} levels'
                            f', the detector {self.num_feature_levels}')
        num_outs = getattr(getattr(self, 'neck', None), 'num_outs', None)
        if num_outs is not None and num_outs != self.num_feature_levels:
            problems.append(f'neck.num_outs={num_outs} but '
                            f'num_feature_levels={self.num_feature_levels}')
        if head.num_mask_levels > self.num_feature_levels:
            problems.append(f'bbox_head.num_mask_levels={head.num_mask_levels}'
                            f' exceeds num_feature_levels')
        if head.embed_dims != self.embed_dims:
            problems.append(f'bbox_head.embed_dims={head.embed_dims} but the '
                            f'encoder has {self.embed_dims}')
        if problems:
            raise ValueError('Inconsistent PanopticSegFormer config:\n  ' +
                             '\n  '.join(problems))

    def init_weights(self) -> None:
        """Deformable DETR's initialisation of the transformer parts."""
        super().init_weights()
        for coder in (self.encoder, self.decoder):
            for p in coder.parameters():
                if p.dim() > 1:
                    nn.init.xavier_uniform_(p)
        for m in self.modules():
            if isinstance(m, MultiScaleDeformableAttention):
                m.init_weights()
        nn.init.xavier_uniform_(self.reference_points_fc.weight)
        nn.init.zeros_(self.reference_points_fc.bias)
        nn.init.normal_(self.level_embed)

    def forward_encoder(self, feat: Tensor, feat_mask: Tensor,
                        feat_pos: Tensor, spatial_shapes: Tensor,
                        level_start_index: Tensor,
                        valid_ratios: Tensor) -> Dict:
        """Deformable encoder over all levels.

        Args:
            feat (Tensor): (B, L, C) flattened features.
            feat_mask (Tensor | None): (B, L) bool, True at padding.
            feat_pos (Tensor): (B, L, C) positional + level embeddings.
            spatial_shapes (Tensor): (num_levels, 2).
            level_start_index (Tensor): (num_levels,).
            valid_ratios (Tensor): (B, num_levels, 2).

        Returns:
            dict: ``memory`` (B, L, C), ``memory_mask``, ``memory_pos``
            (kept for the mask decoder's keys) and ``spatial_shapes``.
        """
        memory = self.encoder(
            query=feat,
            query_pos=feat_pos,
            key_padding_mask=feat_mask,
            spatial_shapes=spatial_shapes,
            level_start_index=level_start_index,
            valid_ratios=valid_ratios)
        return dict(memory=memory, memory_mask=feat_mask,
                    memory_pos=feat_pos, spatial_shapes=spatial_shapes)

    def pre_decoder(self, memory: Tensor, memory_mask: Tensor,
                    memory_pos: Tensor,
                    spatial_shapes: Tensor) -> Tuple[Dict, Dict]:
        """Learned queries and their reference points.

        Returns:
            tuple[dict, dict]: Location decoder inputs (``query``,
            ``query_pos`` (B, N, C), ``memory``, ``reference_points``
            (B, N, 2)) and the head inputs known so far.
        """
        batch_size = memory.size(0)
        query_pos, query = torch.split(
            self.query_embedding.weight, self.embed_dims, dim=1)
        query_pos = query_pos.unsqueeze(0).expand(batch_size, -1, -1)
        query = query.unsqueeze(0).expand(batch_size, -1, -1)
        reference_points = self.reference_points_fc(query_pos).sigmoid()
        decoder_inputs_dict = dict(
            query=query, query_pos=query_pos, memory=memory,
            reference_points=reference_points)
        head_inputs_dict = dict(
            query_pos=query_pos, memory=memory, memory_mask=memory_mask,
            memory_pos=memory_pos, spatial_shapes=spatial_shapes)
        return decoder_inputs_dict, head_inputs_dict

    def forward_decoder(self, query: Tensor, query_pos: Tensor,
                        memory: Tensor, memory_mask: Tensor,
                        reference_points: Tensor, spatial_shapes: Tensor,
                        level_start_index: Tensor,
                        valid_ratios: Tensor) -> Dict:
        """Location decoder (6 deformable layers).

        Returns:
            dict: ``hidden_states`` (num_layers, B, N, C) when the decoder
            returns intermediate states, else (1, B, N, C); ``references``,
            the list of reference points starting with the initial (B, N, 2).
        """
        states, inter_refs = self.decoder(
            query=query,
            value=memory,
            query_pos=query_pos,
            key_padding_mask=memory_mask,
            reference_points=reference_points,
            spatial_shapes=spatial_shapes,
            level_start_index=level_start_index,
            valid_ratios=valid_ratios)
        if states.dim() == 3:
            states, inter_refs = states[None], inter_refs[None]
        return dict(hidden_states=states,
                    references=[reference_points, *inter_refs])

    def predict(self,
                batch_inputs: Tensor,
                batch_data_samples: SampleList,
                rescale: bool = True) -> SampleList:
        """Panoptic (``pred_panoptic_seg``) and instance (``pred_instances``)
        results for a batch, in mmdet's conventions.

        Args:
            batch_inputs (Tensor): (B, 3, H, W) padded images.
            batch_data_samples (list[DetDataSample]): Their meta information.
            rescale (bool): Resize results to the original image size.
        """
        img_feats = self.extract_feat(batch_inputs)
        head_inputs_dict = self.forward_transformer(img_feats,
                                                    batch_data_samples)
        cls_scores, mask_preds = self.bbox_head.predict(
            **head_inputs_dict, batch_data_samples=batch_data_samples)
        results = self.panoptic_fusion_head.predict(
            cls_scores, mask_preds, batch_data_samples, rescale=rescale)
        for data_sample, result in zip(batch_data_samples, results):
            if 'pan_results' in result:
                data_sample.pred_panoptic_seg = result['pan_results']
            if 'ins_results' in result:
                data_sample.pred_instances = result['ins_results']
        return batch_data_samples

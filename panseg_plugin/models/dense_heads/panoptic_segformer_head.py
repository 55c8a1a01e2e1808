"""Panoptic SegFormer head: location MLP, mask decoder and losses."""
from typing import List, NamedTuple, Optional, Tuple

import torch
from mmcv.cnn import Conv2d
from mmdet.models.layers import MLP, inverse_sigmoid
from mmdet.registry import MODELS, TASK_UTILS
from mmdet.utils import OptConfigType, OptMultiConfig
from mmengine.model import BaseModule, bias_init_with_prob
from torch import Tensor, nn

from ..layers import MaskDecoder
from ..utils import (attention_maps_to_masks, query_key_to_masks,
                     refuse_test_cfg)
from .panoptic_segformer_loss_mixin import PanopticSegFormerLossMixin


class PanopticSegFormerHeadOutputs(NamedTuple):
    """Raw outputs of :class:`PanopticSegFormerHead` (``mode='tensor'``).

    Attributes:
        cls_scores (Tensor): Class logits (P, B, N, C) of the P predicting
            mask-decoder layers (all layers in training with deep
            supervision, otherwise only the last), C = things + stuff.
        mask_preds (Tensor): Mask logits (P, B, N, H_0, W_0) at the stride of
            the first feature level (1/8 of the padded input).
        loc_preds (Tensor): (B, N, 3) predicted (cx, cy, scale) in [0, 1].
        attn_maps (Tensor | None): Last mask-decoder layer's attention
            logits (B, N, h, L) over the tokens of the mask levels, with
            ``explicit_attention`` only (None otherwise).
        mask_shapes (Tensor): (K, 2) long, (H_i, W_i) of the K mask levels,
            in the order of the tokens of ``attn_maps``.
    """
    cls_scores: Tensor
    mask_preds: Tensor
    loc_preds: Tensor
    attn_maps: Optional[Tensor]
    mask_shapes: Tensor


@MODELS.register_module()
class PanopticSegFormerHead(PanopticSegFormerLossMixin, BaseModule):
    """Mask decoder, classifier and auxiliary location head (sections 3.3-3.5).

    Takes the location decoder's last-layer queries, refines them with the
    mask decoder over the encoder tokens of the first ``num_mask_levels``
    levels, predicts a class from each refined query (one linear layer) and
    a mask from each query's attention maps (split per level, upsampled to
    level 0, concatenated, 1x1 conv). An MLP on the location-aware queries
    predicts their centre and scale, supervised by the location loss.

    The masks are computed from the cross-attention's projected queries
    and keys (:func:`query_key_to_masks`) and its output by torch's
    ``scaled_dot_product_attention``: the (B, N, h, L) logits of a layer
    are never held, in training (every deep-supervised layer) or in
    inference. ``explicit_attention=True`` computes them, builds the masks
    from them (:func:`attention_maps_to_masks`, the reference path; the
    same masks to float rounding) and returns the last layer's in
    ``attn_maps``, for the attention-map tool.

    Choices where the paper is silent:
      * Deep supervision: every mask-decoder layer predicts classes and
        masks and is matched and supervised on its own (losses ``d{i}.*``),
        as the authors' code does; ``deep_supervision=False`` supervises the
        last layer only. ``deep_supervision_reduction``: ``'sum'`` adds the
        layers' class and mask losses (4 layers: effective 4 : 4 : 5 with
        the location loss, the authors' practice), ``'mean'`` averages them
        (Eq. 3's 1 : 1 : 5). Toy set ('sum', backbone from scratch): 38.4
        PQ_th with deep supervision, 29.4 without.
      * One classifier and one 1x1 mask conv serve all mask-decoder layers
        (as Deformable DETR's prediction layers without box refinement).
      * The location MLP predicts a delta on the query's reference point in
        logit space, as Deformable DETR's box branch, plus a scale through a
        sigmoid; the location loss (mmdet's ``L1Loss``, Eq. 4) uses the last
        layer's matching.
      * Attention keys are the encoder tokens without positional encoding
        (``use_memory_pos=False``), as in the authors' code: content-only
        keys let a query's mask follow the object's extent (toy set: 23%
        of the attention on the object vs 16%, PQ_th at 1000 iterations
        9.3 vs 6.5).
      * Mask resolution: matching compares the 1/8 masks; the dice loss of
        the matched queries compares their mask logits upsampled bilinearly
        by ``mask_loss_upsample`` (2, i.e. 1/4 of the input, as the authors'
        code) with the ground truth at that resolution. Both see only the
        cells that hold image pixels: padding of the batch takes part in
        neither, so an image is matched and supervised alike in any batch.

    Args:
        num_things_classes (int): Number of thing classes.
        num_stuff_classes (int): Number of stuff classes (0 = instance mode).
        embed_dims (int): Channels C of queries and tokens.
        num_mask_levels (int): The mask decoder uses the first this many
            feature levels (stride 8/16/32 -> 3).
        mask_decoder (dict): Keyword arguments of :class:`MaskDecoder`.
        deep_supervision (bool): Supervise every mask-decoder layer.
        deep_supervision_reduction (str): 'sum' or 'mean' of the layers'
            class and mask losses, see above.
        use_memory_pos (bool): Add the encoder's positional encodings to the
            attention keys.
        mask_loss_upsample (int): Upsampling factor of the matched mask
            logits (and of the ground-truth resolution) in the mask loss;
            1 keeps the 1/8 resolution.
        explicit_attention (bool): Compute and return the attention logits
            (see above); an attribute that may be set on a built head.
        loss_cls (dict): Classification loss (focal, weight 1).
        loss_mask (dict): Mask loss (dice, weight 1).
        loss_loc (dict): Location loss (mmdet L1Loss, weight 5).
        share_pred_layer, num_pred_layer, as_two_stage: Set by
            :class:`DeformableDETR` (True, the location decoder's number of
            layers, checked in ``forward``, and False: no box refinement,
            one stage; nothing else is supported).
        train_cfg (dict): Holds ``assigner``, the matcher config.
        test_cfg (dict, optional): Must be empty: the post-processing
            thresholds are arguments of the fusion head.
        init_cfg (dict, optional): Initialisation config.
    """

    def __init__(self,
                 *,
                 num_things_classes: int = 80,
                 num_stuff_classes: int = 53,
                 embed_dims: int = 256,
                 num_mask_levels: int = 3,
                 mask_decoder: OptConfigType = None,
                 deep_supervision: bool = True,
                 deep_supervision_reduction: str = 'sum',
                 use_memory_pos: bool = False,
                 mask_loss_upsample: int = 2,
                 explicit_attention: bool = False,
                 loss_cls: OptConfigType = None,
                 loss_mask: OptConfigType = None,
                 loss_loc: OptConfigType = None,
                 share_pred_layer: bool = True,
                 num_pred_layer: Optional[int] = None,
                 as_two_stage: bool = False,
                 train_cfg: OptConfigType = None,
                 test_cfg: OptConfigType = None,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if not share_pred_layer or as_two_stage:
            raise ValueError('Panoptic SegFormer has no box refinement and '
                             'one stage: set with_box_refine=False and '
                             'as_two_stage=False')
        if deep_supervision_reduction not in ('sum', 'mean'):
            raise ValueError("deep_supervision_reduction must be 'sum' or "
                             f"'mean', got {deep_supervision_reduction!r}")
        if int(mask_loss_upsample) != mask_loss_upsample or \
                mask_loss_upsample < 1:
            raise ValueError('mask_loss_upsample must be a positive integer,'
                             f' got {mask_loss_upsample}')
        refuse_test_cfg(test_cfg)
        self.num_things_classes = num_things_classes
        self.num_stuff_classes = num_stuff_classes
        self.num_classes = num_things_classes + num_stuff_classes
        self.embed_dims = embed_dims
        self.num_mask_levels = num_mask_levels
        self.deep_supervision = deep_supervision
        self.deep_supervision_reduction = deep_supervision_reduction
        self.use_memory_pos = use_memory_pos
        self.mask_loss_upsample = int(mask_loss_upsample)
        self.explicit_attention = explicit_attention
        self.num_pred_layer = num_pred_layer

        decoder_cfg = dict(num_layers=4, embed_dims=embed_dims)
        decoder_cfg.update(mask_decoder or {})
        self.mask_decoder = MaskDecoder(**decoder_cfg)
        if self.mask_decoder.embed_dims != embed_dims:
            raise ValueError('mask_decoder.embed_dims must equal embed_dims')
        self.cls_branch = nn.Linear(embed_dims, self.num_classes)
        self.mask_branch = Conv2d(
            self.mask_decoder.num_heads * num_mask_levels, 1, kernel_size=1)
        self.loc_branch = MLP(embed_dims, embed_dims, 3, 3)

        self.loss_cls = MODELS.build(loss_cls or dict(
            type='mmdet.FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25,
            loss_weight=1.0))
        self.loss_mask = MODELS.build(loss_mask or dict(
            type='mmdet.DiceLoss', use_sigmoid=True, activate=True,
            naive_dice=False, loss_weight=1.0))
        self.loss_loc = MODELS.build(
            loss_loc or dict(type='mmdet.L1Loss', loss_weight=5.0))
        if not getattr(self.loss_cls, 'use_sigmoid', False):
            raise ValueError('loss_cls must be sigmoid-based (focal): the '
                             'classifier has no background channel')
        assigner = (train_cfg or {}).get('assigner', dict(
            type='PanopticSegFormerAssigner',
            match_costs=[
                dict(type='mmdet.FocalLossCost', weight=1.0),
                dict(type='mmdet.DiceCost', weight=1.0, pred_act=True,
                     naive_dice=False)
            ]))
        self.assigner = TASK_UTILS.build(assigner)

    def init_weights(self) -> None:
        """Focal-loss prior on class biases; the location MLP starts at the
        reference points."""
        super().init_weights()
        nn.init.constant_(self.cls_branch.bias, bias_init_with_prob(0.01))
        nn.init.zeros_(self.loc_branch.layers[-1].weight)
        nn.init.zeros_(self.loc_branch.layers[-1].bias)

    def forward(self, hidden_states: Tensor, references: List[Tensor],
                query_pos: Tensor, memory: Tensor,
                memory_mask: Optional[Tensor], memory_pos: Tensor,
                spatial_shapes: Tensor) -> PanopticSegFormerHeadOutputs:
        """Predict classes, masks and locations.

        Args:
            hidden_states (Tensor): Location decoder outputs
                (num_dec_layers, B, N, C); the last layer is used.
            references (list[Tensor]): Reference points; ``references[0]``
                is the initial (B, N, 2) (cx, cy) of each query.
            query_pos (Tensor): (B, N, C) query positional embeddings.
            memory (Tensor): (B, L_all, C) encoder output of all levels.
            memory_mask (Tensor | None): (B, L_all) bool, True at padding.
            memory_pos (Tensor): (B, L_all, C) positional + level encodings.
            spatial_shapes (Tensor): (num_levels, 2) (H_i, W_i) per level.

        Returns:
            PanopticSegFormerHeadOutputs: See its docstring.
        """
        if spatial_shapes.size(0) < self.num_mask_levels:
            raise ValueError(f'head needs {self.num_mask_levels} levels, the '
                             f'encoder has {spatial_shapes.size(0)}')
        if self.num_pred_layer is not None and \
                hidden_states.size(0) != self.num_pred_layer:
            raise ValueError(
                f'expected hidden_states of {self.num_pred_layer} location-'
                f'decoder layers, got {tuple(hidden_states.shape)}')
        mask_shapes = spatial_shapes[:self.num_mask_levels]
        num_tokens = int(mask_shapes.prod(1).sum())
        query = hidden_states[-1]
        queries, terms = self.mask_decoder(
            query,
            memory[:, :num_tokens],
            query_pos=query_pos,
            memory_pos=memory_pos[:, :num_tokens]
            if self.use_memory_pos else None,
            memory_mask=None if memory_mask is None else
            memory_mask[:, :num_tokens],
            need_logits=self.explicit_attention)

        num_layers = len(queries)
        if self.training and self.deep_supervision:
            layer_ids = list(range(num_layers))
        else:
            layer_ids = [num_layers - 1]
        cls_scores = [self.cls_branch(queries[i]) for i in layer_ids]
        mask_preds = [self._masks(terms[i], mask_shapes) for i in layer_ids]
        delta = self.loc_branch(query)
        center = (delta[..., :2] + inverse_sigmoid(references[0])).sigmoid()
        loc_preds = torch.cat([center, delta[..., 2:].sigmoid()], dim=-1)
        return PanopticSegFormerHeadOutputs(
            torch.stack(cls_scores), torch.stack(mask_preds), loc_preds,
            terms[-1].logits, mask_shapes)

    def _masks(self, terms, mask_shapes: Tensor) -> Tensor:
        """Mask logits (B, N, H_0, W_0) of one layer from its
        :class:`AttentionTerms`: from the logits when they were computed,
        else from the projected queries (B, N, C) and keys (B, L, C)."""
        weight, bias = self.mask_branch.weight, self.mask_branch.bias
        if terms.logits is not None:
            return attention_maps_to_masks(terms.logits, mask_shapes, weight,
                                           bias)
        return query_key_to_masks(terms.query, terms.key, mask_shapes,
                                  weight, bias, self.mask_decoder.num_heads,
                                  self.mask_decoder.layers[0].cross_attn.scale)

    def predict(self, **head_inputs) -> Tuple[Tensor, Tensor]:
        """Last layer's class logits (B, N, C) and mask logits
        (B, N, H_0, W_0) from the inputs of :meth:`forward`; the fusion
        head turns them into results."""
        outs = self(**head_inputs)
        return outs.cls_scores[-1], outs.mask_preds[-1]

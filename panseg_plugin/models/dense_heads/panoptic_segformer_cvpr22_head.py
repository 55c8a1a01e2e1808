"""Head of the CVPR'22 (released) Panoptic SegFormer models."""
from typing import List, NamedTuple, Tuple

import torch
from mmdet.models.dense_heads import DeformableDETRHead
from mmdet.registry import MODELS, TASK_UTILS
from mmdet.structures import SampleList
from mmdet.utils import OptConfigType
from mmengine.model import bias_init_with_prob
from torch import Tensor, nn

from ..layers.panoptic_segformer_cvpr22_mask_decoder import (
    PanopticSegFormerCVPR22MaskDecoder,
    PanopticSegFormerCVPR22MaskDecoderOutputs)
from .panoptic_segformer_cvpr22_loss_mixin import \
    PanopticSegFormerCVPR22LossMixin


class PanopticSegFormerCVPR22Candidates(NamedTuple):
    """Inputs of :class:`PanopticSegFormerCVPR22FusionHead`, batch-first.

    Attributes:
        thing_scores (Tensor): (B, K) sigmoid class scores of the top-K
            (query, thing class) pairs of the last location-decoder layer.
        thing_labels (Tensor): (B, K) their thing labels.
        thing_boxes (Tensor): (B, K) + (4,) normalised (cx, cy, w, h).
        thing_masks (Tensor): (B, K, H_0, W_0) thing-decoder tail masks.
        stuff_scores (Tensor): (B, S) sigmoid stuff scores.
        stuff_masks (Tensor): (B, S, H_0, W_0) stuff-decoder tail masks.
        thing_queries (Tensor): (B, K) index of each candidate's query.
    """
    thing_scores: Tensor
    thing_labels: Tensor
    thing_boxes: Tensor
    thing_masks: Tensor
    stuff_scores: Tensor
    stuff_masks: Tensor
    thing_queries: Tensor


@MODELS.register_module()
class PanopticSegFormerCVPR22Head(PanopticSegFormerCVPR22LossMixin,
                                  DeformableDETRHead):
    """Location head plus the thing and stuff mask decoders of the release.

    The authors' CVPR'22 models differ from the v1 paper: the location
    decoder is Deformable DETR with iterative box refinement whose
    per-layer class (``num_classes`` thing classes, sigmoid) and box
    branches are inherited unchanged from :class:`DeformableDETRHead`. At
    inference the top ``num_thing_candidates`` (query, class) pairs of the
    last layer go through a thing mask decoder (no self-attention, no
    position); ``num_stuff_classes`` learned, class-fixed stuff queries go
    through a stuff mask decoder (self-attention, accumulating position)
    whose last block feeds a binary "present" classifier. Both decoders see
    the encoder memory of the first ``num_mask_levels`` levels.

    Training follows the authors' losses and matching, see
    :class:`PanopticSegFormerCVPR22LossMixin`.

    Args:
        num_stuff_classes (int): Stuff classes S, one query each.
        num_mask_levels (int): Memory levels the mask decoders read.
        num_thing_candidates (int): K, thing candidates at inference.
        things_mask_decoder (dict): :class:`PanopticSegFormerCVPR22MaskDecoder`
            arguments of the thing decoder.
        stuff_mask_decoder (dict): The same for the stuff decoder.
        query_filter_rounds (int): Hungarian rounds of the query filter; 1
            reproduces the authors' code, 3 is what they configured.
        loss_mask (dict): Dice loss on the raw masks (weight 2).
        loss_stuff_cls (dict): Focal loss of the stuff "present" logits
            (weight 4: their config's 2 times a hard-coded 2).
        *args, **kwargs: :class:`DeformableDETRHead` arguments
            (``num_classes`` is the number of thing classes).
    """

    def __init__(self,
                 *args,
                 num_stuff_classes: int = 53,
                 num_mask_levels: int = 3,
                 num_thing_candidates: int = 100,
                 things_mask_decoder: OptConfigType = None,
                 stuff_mask_decoder: OptConfigType = None,
                 query_filter_rounds: int = 1,
                 loss_mask: OptConfigType = None,
                 loss_stuff_cls: OptConfigType = None,
                 **kwargs) -> None:
        self.num_stuff_classes = num_stuff_classes
        self.num_mask_levels = num_mask_levels
        self.num_thing_candidates = num_thing_candidates
        self.things_mask_decoder_cfg = dict(
            dict(num_layers=4, with_self_attn=False),
            **(things_mask_decoder or {}))
        self.stuff_mask_decoder_cfg = dict(
            dict(num_layers=6, with_self_attn=True),
            **(stuff_mask_decoder or {}))
        if query_filter_rounds < 1:
            raise ValueError('query_filter_rounds must be >= 1, got '
                             f'{query_filter_rounds}')
        self.query_filter_rounds = query_filter_rounds
        super().__init__(*args, **kwargs)
        self.loss_mask = MODELS.build(loss_mask or dict(
            type='DiceLoss', use_sigmoid=False, activate=False,
            naive_dice=False, eps=1e-6, loss_weight=2.0))
        self.loss_stuff_cls = MODELS.build(loss_stuff_cls or dict(
            type='FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25,
            loss_weight=4.0))
        train_cfg = kwargs.get('train_cfg') or {}
        self.mask_assigner = TASK_UTILS.build(
            train_cfg['mask_assigner']) if 'mask_assigner' in train_cfg \
            else None

    def _init_layers(self) -> None:
        """Box and class branches, mask decoders, stuff queries."""
        super()._init_layers()
        dims = self.embed_dims
        self.things_mask_decoder = PanopticSegFormerCVPR22MaskDecoder(
            embed_dims=dims, num_levels=self.num_mask_levels,
            **self.things_mask_decoder_cfg)
        self.stuff_mask_decoder = PanopticSegFormerCVPR22MaskDecoder(
            embed_dims=dims, num_levels=self.num_mask_levels,
            **self.stuff_mask_decoder_cfg)
        # (content | position), the reverse of the location queries' split
        self.stuff_query = nn.Embedding(self.num_stuff_classes, dims * 2)
        self.cls_stuff_branches = nn.ModuleList(
            nn.Linear(dims, 1)
            for _ in range(len(self.stuff_mask_decoder.layers)))

    def init_weights(self) -> None:
        """Deformable DETR's branch init, xavier decoders, prior biases."""
        super().init_weights()
        self.things_mask_decoder.init_weights()
        self.stuff_mask_decoder.init_weights()
        bias = bias_init_with_prob(0.01)
        for branch in self.cls_stuff_branches:
            nn.init.constant_(branch.bias, bias)

    def forward(self, hidden_states: Tensor, references: List[Tensor],
                **kwargs) -> Tuple[Tensor, Tensor]:
        """Per-layer class logits (L, B, N, C) and boxes (L, B, N, 4), as
        :class:`DeformableDETRHead`; the detector's other head inputs
        (``memory``, ``spatial_shapes``) are accepted for ``mode='tensor'``
        and unused here."""
        return super().forward(hidden_states, references)

    def mask_memory(self, memory: Tensor, spatial_shapes: Tensor
                    ) -> Tuple[Tensor, List[Tuple[int, int]]]:
        """The memory tokens of the first ``num_mask_levels`` levels.

        Args:
            memory (Tensor): (B, L, C) encoder output over all levels.
            spatial_shapes (Tensor): (num_levels, 2) per-level (H, W).

        Returns:
            tuple[Tensor, list[tuple[int, int]]]: (B, L', C) tokens and
            their level shapes.
        """
        shapes = [(int(h), int(w))
                  for h, w in spatial_shapes[:self.num_mask_levels].tolist()]
        if len(shapes) < self.num_mask_levels:
            raise ValueError(f'{self.num_mask_levels} mask levels need as '
                             f'many feature levels, got {len(shapes)}')
        return memory[:, :sum(h * w for h, w in shapes)], shapes

    def forward_things(self, queries: Tensor, memory: Tensor,
                       shapes: List[Tuple[int, int]]
                       ) -> PanopticSegFormerCVPR22MaskDecoderOutputs:
        """Thing mask decoder on (B, K, C) queries over (B, L', C)."""
        return self.things_mask_decoder(queries, memory, shapes)

    def forward_stuff(
        self, memory: Tensor, shapes: List[Tuple[int, int]]
    ) -> Tuple[PanopticSegFormerCVPR22MaskDecoderOutputs, List[Tensor]]:
        """Stuff mask decoder and per-block stuff logits.

        Args:
            memory (Tensor): (B, L', C) mask-level memory.
            shapes (list[tuple[int, int]]): Their level shapes.

        Returns:
            tuple: Decoder outputs and, per block, (B, S) stuff logits.
        """
        content, pos = self.stuff_query.weight.split(self.embed_dims, dim=1)
        batch = memory.size(0)
        outputs = self.stuff_mask_decoder(
            content[None].expand(batch, -1, -1), memory, shapes,
            query_pos=pos[None])
        logits = [
            branch(query).squeeze(-1) for branch, query in zip(
                self.cls_stuff_branches, outputs.block_queries)
        ]
        return outputs, logits

    def select_thing_candidates(
            self, cls_logits: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        """Top-K (query, thing class) pairs of each image.

        The sigmoid scores are ranked over all N x C pairs (query-major),
        so a query can be a candidate for several classes.

        Args:
            cls_logits (Tensor): (B, N, C) last-layer class logits.

        Returns:
            tuple[Tensor, Tensor, Tensor]: (B, K) scores, labels and query
            indices, by descending score.
        """
        scores, labels, queries = [], [], []
        for logits in cls_logits:
            score, index = logits.sigmoid().view(-1).topk(
                self.num_thing_candidates)
            scores.append(score)
            labels.append(index % self.num_classes)
            queries.append(
                torch.div(index, self.num_classes, rounding_mode='floor'))
        return torch.stack(scores), torch.stack(labels), torch.stack(queries)

    def predict(self, hidden_states: Tensor, references: List[Tensor],
                memory: Tensor, spatial_shapes: Tensor,
                batch_data_samples: SampleList,
                **kwargs) -> PanopticSegFormerCVPR22Candidates:
        """Thing candidates and stuff predictions of a batch.

        Args:
            hidden_states (Tensor): (num_layers, B, N, C) location decoder
                states.
            references (list[Tensor]): Initial (B, N, 2) and per-layer
                (B, N, 4) references, as :class:`DeformableDETR` returns.
            memory (Tensor): (B, L, C) encoder memory.
            spatial_shapes (Tensor): (num_levels, 2).
            batch_data_samples (list[DetDataSample]): Unused here.

        Returns:
            PanopticSegFormerCVPR22Candidates: Batch-first candidates.
        """
        all_cls, all_boxes = self(hidden_states, references)
        boxes_last = all_boxes[-1]
        scores, labels, queries = self.select_thing_candidates(all_cls[-1])
        gather = queries[..., None]
        states = hidden_states[-1].gather(
            1, gather.expand(-1, -1, hidden_states.size(-1)))
        boxes = boxes_last.gather(1, gather.expand(-1, -1, 4))
        mask_memory, shapes = self.mask_memory(memory, spatial_shapes)
        things = self.forward_things(states, mask_memory, shapes)
        stuff, stuff_logits = self.forward_stuff(mask_memory, shapes)
        return PanopticSegFormerCVPR22Candidates(
            scores, labels, boxes, things.tail_mask,
            stuff_logits[-1].sigmoid(), stuff.tail_mask, queries)

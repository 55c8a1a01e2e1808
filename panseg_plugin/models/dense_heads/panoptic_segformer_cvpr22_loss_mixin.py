"""Training losses of the CVPR'22 (released) Panoptic SegFormer head."""
from typing import Dict, List, Tuple

import torch
import torch.nn.functional as F
from mmdet.models.utils import multi_apply
from mmdet.structures import SampleList
from mmdet.structures.bbox import bbox_cxcywh_to_xyxy
from mmdet.utils import InstanceList, reduce_mean
from mmengine.structures import InstanceData
from scipy.optimize import linear_sum_assignment
from torch import Tensor

# cost of rows already used by an earlier filter round
_USED = 1e7


class PanopticSegFormerCVPR22LossMixin:
    """Losses of :class:`PanopticSegFormerCVPR22Head`, as the authors train.

    1. Location decoder, every layer: Deformable DETR's focal / L1 / GIoU
       losses on the things, from mmdet's :class:`DeformableDETRHead`
       (terms ``d{l}.loss_*`` for layers 0..L-2, ``loss_*`` for the last).
    2. Query filter on the last layer: ``query_filter_rounds`` rounds of
       Hungarian matching on the same costs, each excluding the queries
       already taken; the kept queries go to the thing mask decoder. The
       authors configure 3 rounds but their loop stops after the first, so
       the default is 1 (their behaviour); 3 is their intent. The first
       round is also the last layer's box matching, so ``loss_*`` of the
       last layer is Deformable DETR's loss in both cases.
    3. Mask-level Hungarian matching (``mask_assigner``: class, box and
       dice costs) between the kept queries and the things.
    4. Dice losses (the masks upsampled x2, targets resized to them) on the
       thing tail (``loss_mask_things``) and every thing block
       (``d{j}.loss_mask_things_f``), the stuff tail and blocks, where stuff
       query k is supervised by stuff class k if present (no matching), and
       a binary focal "present" loss on every stuff block
       (``d{j}.loss_cls_stuff_f``).
    5. Thing terms are scaled by ``N_th / (N_th + N_st)`` and stuff terms
       by ``N_st / (N_th + N_st)``, the batch's thing and stuff counts.

    The authors also compute per-block thing box and class losses and
    multiply them by 0; their branches are not part of this model and the
    terms are not reported.
    """

    def split_panoptic_gt(self, batch_data_samples: SampleList
                          ) -> Tuple[InstanceList, List[Tuple[Tensor,
                                                              Tensor]]]:
        """Things as instances, stuff as (stuff index, mask) per image.

        Stuff may come as ``gt_instances`` with labels >= the number of
        thing classes or as ``gt_sem_seg`` (mmdet's panoptic data: 255 and
        thing labels are ignored).

        Returns:
            tuple: Per image, thing :obj:`InstanceData` (``labels``,
            ``bboxes``, ``masks`` (n, H, W) bool) and (stuff indices (s,),
            stuff masks (s, H, W) bool).
        """
        things, stuff = [], []
        for sample in batch_data_samples:
            gt = sample.gt_instances
            masks = gt.masks
            if hasattr(masks, 'to_tensor'):
                masks = masks.to_tensor(torch.bool, gt.labels.device)
            masks = masks.bool()
            is_thing = gt.labels < self.num_classes
            things.append(
                InstanceData(labels=gt.labels[is_thing],
                             bboxes=gt.bboxes[is_thing],
                             masks=masks[is_thing]))
            labels = [gt.labels[~is_thing] - self.num_classes]
            stuff_masks = [masks[~is_thing]]
            if 'gt_sem_seg' in sample:
                sem_seg = sample.gt_sem_seg.sem_seg[0]
                for label in torch.unique(sem_seg):
                    index = int(label) - self.num_classes
                    if 0 <= index < self.num_stuff_classes:
                        labels.append(label.new_tensor([index]))
                        stuff_masks.append((sem_seg == label)[None])
            stuff.append((torch.cat(labels).long(), torch.cat(stuff_masks)))
        return things, stuff

    def filter_queries(self, cls_score: Tensor, bbox_pred: Tensor,
                       gt_instances: InstanceData, img_meta: dict) -> Tensor:
        """Queries kept for the thing mask decoder (ascending indices).

        Args:
            cls_score (Tensor): (N, C) last-layer logits of one image.
            bbox_pred (Tensor): (N, 4) normalised cxcywh boxes.
            gt_instances (InstanceData): The image's things.
            img_meta (dict): With ``img_shape``.

        Returns:
            Tensor: (K,) long query indices.
        """
        num_gts = len(gt_instances)
        if num_gts == 0:
            return cls_score.new_zeros((0, ), dtype=torch.long)
        img_h, img_w = img_meta['img_shape'][:2]
        factor = bbox_pred.new_tensor([img_w, img_h, img_w, img_h])
        pred = InstanceData(scores=cls_score,
                            bboxes=bbox_cxcywh_to_xyxy(bbox_pred) * factor)
        cost = sum(
            match_cost(pred_instances=pred, gt_instances=gt_instances,
                       img_meta=img_meta)
            for match_cost in self.assigner.match_costs)
        cost = cost.detach().cpu()
        kept = []
        for _ in range(min(self.query_filter_rounds,
                           cls_score.size(0) // num_gts)):
            rows, _ = linear_sum_assignment(cost.numpy())
            kept.extend(rows.tolist())
            cost[rows] = _USED
        return torch.tensor(sorted(kept), dtype=torch.long,
                            device=cls_score.device)

    def _dice(self, preds: Tensor, targets: Tensor, weights: Tensor,
              avg_factor: float) -> Tensor:
        """Dice loss on (K, h, w) masks upsampled x2 vs resized targets."""
        if preds.size(0) == 0:
            return preds.sum() * 0
        preds = F.interpolate(preds[None], scale_factor=2.0,
                              mode='bilinear')[0]
        targets = F.interpolate(targets[None].float(),
                                size=preds.shape[-2:], mode='bilinear')[0]
        return self.loss_mask(preds, targets, weights, avg_factor=avg_factor)

    def _thing_mask_targets(self, cls_score, bbox_pred, masks, gt_instances,
                            img_meta) -> Tuple[Tensor, Tensor, Tensor]:
        """Mask-level matching of one image's kept queries.

        Returns:
            tuple[Tensor, Tensor, Tensor]: Targets (K, H, W), weights (K,)
            and the assigned (1-based, 0 = none) thing per query.
        """
        num = masks.size(0)
        targets = masks.new_zeros((num, ) + gt_instances.masks.shape[-2:])
        if num == 0 or len(gt_instances) == 0:
            return targets, masks.new_zeros(num), masks.new_zeros(
                num, dtype=torch.long)
        if self.mask_assigner is None:
            raise ValueError('training needs train_cfg.mask_assigner, the '
                             'mask-level matching of the filtered queries '
                             '(see the released configs)')
        img_h, img_w = img_meta['img_shape'][:2]
        factor = bbox_pred.new_tensor([img_w, img_h, img_w, img_h])
        pred = InstanceData(scores=cls_score,
                            bboxes=bbox_cxcywh_to_xyxy(bbox_pred) * factor,
                            masks=masks.detach())
        assigned = self.mask_assigner.assign(
            pred_instances=pred, gt_instances=gt_instances,
            img_meta=img_meta).gt_inds
        pos = assigned > 0
        targets[pos] = gt_instances.masks[assigned[pos] - 1].to(targets)
        return targets, pos.to(masks), assigned

    def loss(self, hidden_states: Tensor, references: List[Tensor],
             memory: Tensor, spatial_shapes: Tensor,
             batch_data_samples: SampleList, **kwargs) -> Dict[str, Tensor]:
        """All loss terms of a batch.

        Args:
            hidden_states (Tensor): (L, B, N, C) location-decoder states.
            references (list[Tensor]): Their references (as in predict).
            memory (Tensor): (B, L_mem, C) encoder memory.
            spatial_shapes (Tensor): (levels, 2).
            batch_data_samples (list[DetDataSample]): With
                ``gt_instances`` (and ``gt_sem_seg``).

        Returns:
            dict[str, Tensor]: The loss terms (see the class docstring).
        """
        metas = [s.metainfo for s in batch_data_samples]
        gt_things, gt_stuff = self.split_panoptic_gt(batch_data_samples)
        all_cls, all_boxes = self(hidden_states, references)
        loc = multi_apply(self.loss_by_feat_single, list(all_cls),
                          list(all_boxes), [gt_things] * len(all_cls),
                          [metas] * len(all_cls))
        num_things = reduce_mean(all_cls.new_tensor(
            sum(min(len(g), all_cls.size(2)) for g in gt_things)))
        num_things = torch.clamp(num_things, min=1).item()
        num_stuff = reduce_mean(all_cls.new_tensor(
            sum(len(s[0]) for s in gt_stuff)))
        num_stuff = torch.clamp(num_stuff, min=1).item()
        thing_ratio = num_things / (num_things + num_stuff)
        stuff_ratio = num_stuff / (num_things + num_stuff)

        # thing mask decoder on the filtered queries (padded per batch)
        cls_last, boxes_last = all_cls[-1], all_boxes[-1]
        kept = [
            self.filter_queries(c, b, g, m)
            for c, b, g, m in zip(cls_last, boxes_last, gt_things, metas)
        ]
        states = hidden_states[-1]
        queries = states.new_zeros(
            (states.size(0), max([len(k) for k in kept] + [0]),
             states.size(-1)))
        for i, index in enumerate(kept):
            queries[i, :len(index)] = states[i, index]
        mask_memory, shapes = self.mask_memory(memory, spatial_shapes)
        things = self.forward_things(queries, mask_memory, shapes)
        targets, weights = [], []
        for i, index in enumerate(kept):
            target, weight, _ = self._thing_mask_targets(
                cls_last[i, index], boxes_last[i, index],
                things.tail_mask[i, :len(index)], gt_things[i], metas[i])
            targets.append(target)
            weights.append(weight)
        targets, weights = torch.cat(targets), torch.cat(weights)

        def thing_masks(masks):
            return torch.cat([m[:len(k)] for m, k in zip(masks, kept)])

        losses = dict(
            loss_cls=loc[0][-1] * thing_ratio,
            loss_bbox=loc[1][-1] * thing_ratio,
            loss_iou=loc[2][-1] * thing_ratio,
            loss_mask_things=self._dice(
                thing_masks(things.tail_mask), targets, weights, num_things)
            * thing_ratio)
        for j, masks in enumerate(things.block_masks):
            losses[f'd{j}.loss_mask_things_f'] = self._dice(
                thing_masks(masks), targets, weights,
                num_things) * thing_ratio

        # stuff: query k <-> stuff class k, no matching
        stuff, stuff_logits = self.forward_stuff(mask_memory, shapes)
        height, width = gt_things[0].masks.shape[-2:]
        stuff_targets = stuff.tail_mask.new_zeros(
            (len(gt_stuff), self.num_stuff_classes, height, width))
        present = stuff.tail_mask.new_zeros(
            (len(gt_stuff), self.num_stuff_classes))
        for i, (index, masks) in enumerate(gt_stuff):
            stuff_targets[i, index] = masks.to(stuff_targets)
            present[i, index] = 1
        stuff_targets = stuff_targets.flatten(0, 1)
        present = present.flatten()
        absent = (1 - present).long()  # focal label 0 = present
        losses['loss_mask_stuff'] = self._dice(
            stuff.tail_mask.flatten(0, 1), stuff_targets, present,
            num_stuff) * stuff_ratio
        for j, (masks, logits) in enumerate(
                zip(stuff.block_masks, stuff_logits)):
            losses[f'd{j}.loss_mask_stuff_f'] = self._dice(
                masks.flatten(0, 1), stuff_targets, present,
                num_stuff) * stuff_ratio
            losses[f'd{j}.loss_cls_stuff_f'] = self.loss_stuff_cls(
                logits.reshape(-1, 1), absent,
                avg_factor=num_stuff) * stuff_ratio
        for layer in range(len(all_cls) - 1):
            for name, values in zip(('loss_cls', 'loss_bbox', 'loss_iou'),
                                    loc):
                losses[f'd{layer}.{name}'] = values[layer] * thing_ratio
        return losses

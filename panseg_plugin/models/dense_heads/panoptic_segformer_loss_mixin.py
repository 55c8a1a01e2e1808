"""Training losses of the Panoptic SegFormer head (paper Eq. 3-4)."""
from typing import Dict, List, Tuple

import torch
import torch.nn.functional as F
from mmdet.models.utils import multi_apply
from mmdet.structures import SampleList
from mmdet.utils import InstanceList, reduce_mean
from mmengine.structures import InstanceData
from torch import Tensor

from ..utils import panoptic_targets, valid_cells


class PanopticSegFormerLossMixin:
    """Losses of :class:`PanopticSegFormerHead`: per predicting layer,
    Hungarian matching of queries to things and stuff (the head's
    ``assigner``), focal classification and dice mask losses; the location
    loss (Eq. 4) on the last layer's matches. Matching and mask loss see
    only the cells that hold image pixels (:func:`valid_cells`)."""

    def loss(self, batch_data_samples: SampleList,
             **head_inputs) -> Dict[str, Tensor]:
        """Losses of Eq. 3 for a batch.

        Args:
            batch_data_samples (list[DetDataSample]): Ground truth
                (``gt_instances``, ``gt_sem_seg``) and meta information.
            **head_inputs: The inputs of :meth:`forward`.

        Returns:
            dict[str, Tensor]: See :meth:`loss_by_feat`.
        """
        outs = self(**head_inputs)
        mask_size = outs.mask_preds.shape[-2:]
        batch_gt_instances = [
            panoptic_targets(s, self.num_things_classes,
                             self.num_stuff_classes, mask_size,
                             self.mask_loss_upsample)
            for s in batch_data_samples
        ]
        batch_img_metas = [s.metainfo for s in batch_data_samples]
        return self.loss_by_feat(outs.cls_scores, outs.mask_preds,
                                 outs.loc_preds, batch_gt_instances,
                                 batch_img_metas)

    def loss_by_feat(self, all_layers_cls_scores: Tensor,
                     all_layers_mask_preds: Tensor, loc_preds: Tensor,
                     batch_gt_instances: InstanceList,
                     batch_img_metas: List[dict]) -> Dict[str, Tensor]:
        """Class and mask losses of every predicting layer, location loss
        of the last.

        Args:
            all_layers_cls_scores (Tensor): (P, B, N, C) class logits.
            all_layers_mask_preds (Tensor): (P, B, N, H_0, W_0) mask logits.
            loc_preds (Tensor): (B, N, 3) predicted (cx, cy, scale).
            batch_gt_instances (list[InstanceData]): Per image, from
                :func:`panoptic_targets`.
            batch_img_metas (list[dict]): Per image meta information.

        Returns:
            dict[str, Tensor]: ``loss_cls``, ``loss_mask`` and ``loss_loc``
            for the last layer, ``d{i}.loss_cls`` and ``d{i}.loss_mask`` for
            the earlier ones.
        """
        num_layers = all_layers_cls_scores.size(0)
        losses_cls, losses_mask, assignments = multi_apply(
            self._loss_by_feat_single, list(all_layers_cls_scores),
            list(all_layers_mask_preds),
            [batch_gt_instances] * num_layers,
            [batch_img_metas] * num_layers)
        scale = 1.0 / num_layers \
            if self.deep_supervision_reduction == 'mean' else 1.0
        losses = dict(loss_cls=losses_cls[-1] * scale,
                      loss_mask=losses_mask[-1] * scale)
        for i in range(num_layers - 1):
            losses[f'd{i}.loss_cls'] = losses_cls[i] * scale
            losses[f'd{i}.loss_mask'] = losses_mask[i] * scale
        losses['loss_loc'] = self._loss_location(loc_preds,
                                                 batch_gt_instances,
                                                 assignments[-1])
        return losses

    def _loss_by_feat_single(
            self, cls_scores: Tensor, mask_preds: Tensor,
            batch_gt_instances: InstanceList, batch_img_metas: List[dict]
    ) -> Tuple[Tensor, Tensor, List[Tuple[Tensor, Tensor]]]:
        """Match and compute the class and mask losses of one layer.

        Matching and mask loss see only the cells that hold pixels of the
        image (:func:`valid_cells`), not the batch padding.

        Args:
            cls_scores (Tensor): (B, N, C) class logits.
            mask_preds (Tensor): (B, N, H_0, W_0) mask logits.
            batch_gt_instances (list[InstanceData]): Per image targets.
            batch_img_metas (list[dict]): Per image meta information.

        Returns:
            tuple: ``loss_cls``, ``loss_mask`` and, per image, the matched
            (query indices, target indices).
        """
        labels = cls_scores.new_full(cls_scores.shape[:2], self.num_classes,
                                     dtype=torch.long)
        up = self.mask_loss_upsample
        assignments, pairs = [], []
        for b, (target, meta) in enumerate(zip(batch_gt_instances,
                                               batch_img_metas)):
            rows, cols = valid_cells(meta['img_shape'],
                                     meta['batch_input_shape'],
                                     mask_preds.shape[-2:])
            preds = InstanceData(
                scores=cls_scores[b].detach(),
                masks=mask_preds[b, :, :rows, :cols].detach())
            gts = InstanceData(labels=target.labels,
                               masks=target.masks[:, :rows, :cols])
            result = self.assigner.assign(preds, gts, img_meta=meta)
            query_ids = torch.nonzero(result.gt_inds > 0).squeeze(1)
            gt_ids = result.gt_inds[query_ids] - 1
            labels[b, query_ids] = target.labels[gt_ids]
            assignments.append((query_ids, gt_ids))
            pairs.append(
                (mask_preds[b, query_ids, :rows, :cols],
                 target.loss_masks[gt_ids, :up * rows, :up * cols]))

        num_pos = sum(len(q) for q, _ in assignments)
        avg_factor = reduce_mean(cls_scores.new_tensor(
            float(num_pos))).clamp(min=1.0).item()
        loss_cls = self.loss_cls(cls_scores.flatten(0, 1), labels.flatten(),
                                 avg_factor=avg_factor)
        # keeps the graph connected when nothing is matched
        loss_mask = mask_preds.sum() * 0.0
        for preds, gts in pairs:
            if len(preds) == 0:
                continue
            if up > 1:
                preds = F.interpolate(
                    preds[:, None], scale_factor=up, mode='bilinear',
                    align_corners=False)[:, 0]
            loss_mask = loss_mask + self.loss_mask(
                preds, gts, avg_factor=avg_factor)
        return loss_cls, loss_mask, assignments

    def _loss_location(self, loc_preds: Tensor,
                       batch_gt_instances: InstanceList,
                       assignments: List[Tuple[Tensor, Tensor]]) -> Tensor:
        """Eq. 4 over the matched queries of the last mask-decoder layer.

        Args:
            loc_preds (Tensor): (B, N, 3) predicted (cx, cy, scale).
            batch_gt_instances (list[InstanceData]): With ``locations``.
            assignments (list[tuple[Tensor, Tensor]]): Matched query and
                target indices per image.
        """
        preds = torch.cat([
            loc_preds[b, query_ids]
            for b, (query_ids, _) in enumerate(assignments)
        ])
        gts = torch.cat([
            target.locations[gt_ids]
            for target, (_, gt_ids) in zip(batch_gt_instances, assignments)
        ])
        avg_factor = reduce_mean(loc_preds.new_tensor(
            float(preds.size(0)))).clamp(min=1.0).item()
        return self.loss_loc(preds, gts, avg_factor=avg_factor)

"""Post-processing of the CVPR'22 (released) Panoptic SegFormer models."""
from typing import List, Tuple

import torch
import torch.nn.functional as F
from mmdet.models.seg_heads.panoptic_fusion_heads import \
    BasePanopticFusionHead
from mmdet.registry import MODELS
from mmdet.structures import SampleList
from mmdet.structures.bbox import bbox_cxcywh_to_xyxy
from mmdet.utils import OptConfigType, OptMultiConfig
from mmengine.structures import InstanceData, PixelData
from torch import Tensor

from ..utils.panoptic_segformer_cvpr22_merge import (cvpr22_mask_scores,
                                                     cvpr22_mask_wise_merge)


@MODELS.register_module()
class PanopticSegFormerCVPR22FusionHead(BasePanopticFusionHead):
    """Merge thing candidates and stuff queries as the released models do.

    Inputs are the top-k thing candidates (class score, label, box, mask)
    and the per-class stuff queries (binary score, mask). Each mask is
    resized to the output size and binarised at ``mask_thr``; every score
    is multiplied by ``quality ** mask_quality_power`` (see
    :func:`cvpr22_mask_scores`); candidates are sorted by that score and
    painted by :func:`cvpr22_mask_wise_merge` with separate quality and
    overlap thresholds for things and stuff. The instance output holds all
    thing candidates in merged-score order, with their merged scores.

    Args:
        num_things_classes (int): Number of thing classes.
        num_stuff_classes (int): Number of stuff classes (one query each).
        quality_thr_things (float): Merged-score threshold of things (0.25
            for the released R50/R101 models, 0.3 for PVTv2-B5/Swin-L).
        quality_thr_stuff (float): The same for stuff.
        overlap_thr_things (float): A thing is dropped when more than this
            fraction of its mask is already painted (0.4).
        overlap_thr_stuff (float): The same for stuff (0.2).
        mask_thr (float): Binarisation threshold of the (ReLU) masks.
        mask_quality_power (float): Exponent of the mask quality (2).
        stable_sort (bool): Sort with a stable sort. False (the authors'
            unstable ``torch.sort``) reproduces their order of tied scores
            on CPU; True makes ties follow the candidate order.
        panoptic_on (bool): Return ``pan_results``.
        instance_on (bool): Return ``ins_results``.
        test_cfg, loss_panoptic, init_cfg: Accepted for mmdet
            compatibility; unused.
    """

    def __init__(self,
                 *,
                 num_things_classes: int = 80,
                 num_stuff_classes: int = 53,
                 quality_thr_things: float = 0.25,
                 quality_thr_stuff: float = 0.25,
                 overlap_thr_things: float = 0.4,
                 overlap_thr_stuff: float = 0.2,
                 mask_thr: float = 0.5,
                 mask_quality_power: float = 2.0,
                 stable_sort: bool = False,
                 panoptic_on: bool = True,
                 instance_on: bool = True,
                 test_cfg: OptConfigType = None,
                 loss_panoptic: OptConfigType = None,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(
            num_things_classes=num_things_classes,
            num_stuff_classes=num_stuff_classes,
            test_cfg=test_cfg,
            loss_panoptic=loss_panoptic,
            init_cfg=init_cfg)
        self.quality_thr_things = quality_thr_things
        self.quality_thr_stuff = quality_thr_stuff
        self.overlap_thr_things = overlap_thr_things
        self.overlap_thr_stuff = overlap_thr_stuff
        self.mask_thr = mask_thr
        self.mask_quality_power = mask_quality_power
        self.stable_sort = stable_sort
        self.panoptic_on = panoptic_on
        self.instance_on = instance_on

    def loss(self, **kwargs) -> dict:
        """No parameters, no loss."""
        return dict()

    @staticmethod
    def resize_masks(masks: Tensor, img_meta: dict,
                     rescale: bool) -> Tensor:
        """Resize stride-8 masks of the batch input to the output size.

        Without padding (``img_shape == batch_input_shape``, the authors'
        only test setting) the masks are resized straight to the output
        size, as their code does. With padding they are first upsampled to
        ``batch_input_shape`` and cropped to ``img_shape`` (our addition:
        the padding is not part of the image).

        Args:
            masks (Tensor): (K, h, w) masks.
            img_meta (dict): ``img_shape``, ``batch_input_shape`` and, if
                ``rescale``, ``ori_shape``.
            rescale (bool): Output at ``ori_shape``, else ``img_shape``.

        Returns:
            Tensor: (K, H, W) masks at the output size.
        """
        img_h, img_w = img_meta['img_shape'][:2]
        out_h, out_w = img_meta['ori_shape'][:2] if rescale else (img_h,
                                                                  img_w)
        pad_h, pad_w = img_meta.get('batch_input_shape', (img_h, img_w))[:2]
        if (pad_h, pad_w) != (img_h, img_w):
            masks = F.interpolate(
                masks[None], size=(pad_h, pad_w), mode='bilinear',
                align_corners=False)[0][:, :img_h, :img_w]
        if masks.shape[-2:] != (out_h, out_w):
            masks = F.interpolate(
                masks[None], size=(out_h, out_w), mode='bilinear',
                align_corners=False)[0]
        return masks

    @staticmethod
    def rescale_boxes(boxes: Tensor, img_meta: dict,
                      rescale: bool) -> Tensor:
        """Normalised (cx, cy, w, h) -> pixel (x1, y1, x2, y2).

        Scaled to ``img_shape``, clamped to it, then divided by
        ``scale_factor`` if ``rescale`` (the order of the authors' code and
        of mmdet's :class:`DeformableDETRHead`).

        Args:
            boxes (Tensor): (K, 4) boxes in [0, 1].
            img_meta (dict): ``img_shape`` and ``scale_factor`` (w, h).
            rescale (bool): Map to the original image.

        Returns:
            Tensor: (K, 4) boxes.
        """
        img_h, img_w = img_meta['img_shape'][:2]
        boxes = bbox_cxcywh_to_xyxy(boxes)
        boxes[:, 0::2] = boxes[:, 0::2] * img_w
        boxes[:, 1::2] = boxes[:, 1::2] * img_h
        boxes[:, 0::2].clamp_(min=0, max=img_w)
        boxes[:, 1::2].clamp_(min=0, max=img_h)
        if rescale:
            # no Resize in the pipeline: no scale_factor, nothing to undo
            scale = boxes.new_tensor(
                img_meta.get('scale_factor', (1.0, 1.0))[:2])
            boxes /= scale.repeat((1, 2))
        return boxes

    def predict_single(self, thing_scores: Tensor, thing_labels: Tensor,
                       thing_boxes: Tensor, thing_masks: Tensor,
                       stuff_scores: Tensor, stuff_masks: Tensor,
                       img_meta: dict, rescale: bool) -> dict:
        """Results of one image.

        Args:
            thing_scores (Tensor): (K,) class scores of the thing candidates.
            thing_labels (Tensor): (K,) their thing labels.
            thing_boxes (Tensor): (K, 4) their normalised cxcywh boxes.
            thing_masks (Tensor): (K, h, w) their masks (stride 8).
            stuff_scores (Tensor): (S,) stuff scores; stuff query j has
                label ``num_things_classes + j``.
            stuff_masks (Tensor): (S, h, w) stuff masks.
            img_meta (dict): Image meta information.
            rescale (bool): Results at ``ori_shape``.

        Returns:
            dict: ``pan_results`` (:obj:`PixelData`, ``sem_seg`` (1, H, W))
            and/or ``ins_results`` (:obj:`InstanceData` with ``bboxes``
            (K, 4), ``scores``, ``labels``, ``masks`` (K, H, W) bool).
        """
        num_things = thing_scores.numel()
        masks = self.resize_masks(
            torch.cat([thing_masks, stuff_masks]), img_meta, rescale)
        stuff_labels = torch.arange(
            self.num_things_classes,
            self.num_things_classes + stuff_scores.numel(),
            device=thing_labels.device)
        scores, binary = cvpr22_mask_scores(
            masks, torch.cat([thing_scores, stuff_scores]), self.mask_thr,
            self.mask_quality_power)
        labels = torch.cat([thing_labels, stuff_labels])
        scores, order = torch.sort(
            scores, descending=True, stable=self.stable_sort)
        binary, labels = binary[order], labels[order]
        result = dict()
        if self.panoptic_on:
            pan_seg = cvpr22_mask_wise_merge(
                binary, scores, labels, self.num_things_classes,
                self.num_classes, self.quality_thr_things,
                self.quality_thr_stuff, self.overlap_thr_things,
                self.overlap_thr_stuff)
            result['pan_results'] = PixelData(sem_seg=pan_seg[None])
        if self.instance_on:
            is_thing = order < num_things
            boxes = self.rescale_boxes(thing_boxes.clone(), img_meta,
                                       rescale)
            result['ins_results'] = InstanceData(
                bboxes=boxes[order[is_thing]],
                scores=scores[is_thing],
                labels=labels[is_thing],
                masks=binary[is_thing])
        return result

    def predict(self, thing_scores: Tensor, thing_labels: Tensor,
                thing_boxes: Tensor, thing_masks: Tensor,
                stuff_scores: Tensor, stuff_masks: Tensor,
                batch_data_samples: SampleList,
                rescale: bool = True) -> List[dict]:
        """Results of a batch; inputs as :meth:`predict_single` with a
        leading batch dimension B."""
        shapes: List[Tuple] = [
            tuple(t.shape[:2]) for t in (thing_scores, thing_labels,
                                         thing_boxes, thing_masks)
        ]
        if len(set(shapes)) != 1 or len(batch_data_samples) != shapes[0][0]:
            raise ValueError(
                f'thing inputs must share (B, K), got {shapes} for '
                f'{len(batch_data_samples)} images')
        return [
            self.predict_single(*inputs, sample.metainfo, rescale)
            for *inputs, sample in zip(thing_scores, thing_labels,
                                       thing_boxes, thing_masks,
                                       stuff_scores, stuff_masks,
                                       batch_data_samples)
        ]

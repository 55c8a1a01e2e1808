"""Post-processing of Panoptic SegFormer: mask-wise inference (section 3.6).

Turns the last decoder layer's class and mask logits into mmdet's result
structures: a panoptic map (``pan_results``) merged mask-wise by
:func:`mask_wise_merge`, thing instances (``ins_results``) for COCO
instance segmentation and box AP, and a semantic map (``sem_results``, the
class of each pixel of the same merged map) for mIoU.
"""
from typing import List, Optional, Tuple

import torch
from mmdet.models.seg_heads.panoptic_fusion_heads import \
    BasePanopticFusionHead
from mmdet.registry import MODELS
from mmdet.structures import SampleList
from mmdet.utils import OptMultiConfig
from mmengine.structures import InstanceData, PixelData
from torch import Tensor

from ..utils.mask_wise_merge import (mask_boxes, mask_wise_merge,
                                     semantic_from_panoptic)
from ..utils.query_masks import (QueryMasks, mask_score_factors,
                                 output_shape, upsample_masks)


@MODELS.register_module()
class PanopticSegFormerFusionHead(BasePanopticFusionHead):
    """Fuse query masks into panoptic and instance results.

    Classification is sigmoid-based (focal loss, no background channel):
    the score of a query is its largest class probability and its label
    the matching class. Masks arrive as logits at a fraction of the padded
    batch input; only the masks that are needed (queries kept by
    ``score_thr`` for panoptic, the top ``max_per_image`` candidates for
    instances) are upsampled to full resolution.

    Args:
        num_things_classes (int): Number of thing classes. Defaults to 80.
        num_stuff_classes (int): Number of stuff classes. Defaults to 53.
        score_thr (float): Queries scoring below it take no part in the
            panoptic map (the paper's ``thr_cls``). Defaults to 0.3.
        mask_thr (float): A pixel belongs to a mask where its probability
            is ``> mask_thr``. Defaults to 0.5.
        overlap_thr (float, optional): Drop a panoptic segment whose binary
            mask is already taken by more than this fraction; None (the
            paper) disables it. See :func:`mask_wise_merge`.
            Defaults to None.
        mask_score_power (float): If > 0, scores are multiplied by
            ``mean(mask_prob inside binary mask) ** mask_score_power``.
            The official code uses 2; the paper has no such factor, so 0
            (off) is the default.
        max_per_image (int): Number of thing instances kept per image.
            Defaults to 100.
        panoptic_on (bool): Return ``pan_results``. Defaults to True.
        instance_on (bool): Return ``ins_results``. Defaults to True.
        semantic_on (bool): Return ``sem_results``, the class of each pixel
            of the mask-wise merged panoptic map (the same segments), for
            a semantic segmentation metric (mIoU). Defaults to False.
        semantic_void_value (int): Value of ``sem_results`` pixels that no
            segment covers; must not be a class (checked when
            ``semantic_on``). Defaults to 255, the void
            (``ignore_index``) of mmdet's ground-truth semantic maps.
        chunk_size (int): Masks upsampled to full size at a time; the
            results do not depend on it but for float rounding (torch's
            kernels may round an element differently with another number
            of masks). Defaults to 2 (100 masks of 800x1216 on the CPU:
            180 ms with 1-4, 245 with 8, 280 with 16, the float masks of
            a chunk staying in the cache).
        init_cfg (dict or list[dict], optional): Initialization config.
            Defaults to None.
    """

    def __init__(self,
                 *,
                 num_things_classes: int = 80,
                 num_stuff_classes: int = 53,
                 score_thr: float = 0.3,
                 mask_thr: float = 0.5,
                 overlap_thr: Optional[float] = None,
                 mask_score_power: float = 0.0,
                 max_per_image: int = 100,
                 panoptic_on: bool = True,
                 instance_on: bool = True,
                 semantic_on: bool = False,
                 semantic_void_value: int = 255,
                 chunk_size: int = 2,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(
            num_things_classes=num_things_classes,
            num_stuff_classes=num_stuff_classes,
            init_cfg=init_cfg)
        if mask_score_power < 0:
            raise ValueError('mask_score_power must be >= 0, got '
                             f'{mask_score_power}')
        if max_per_image < 0:
            raise ValueError(f'max_per_image must be >= 0, got '
                             f'{max_per_image}')
        if chunk_size < 1:
            raise ValueError(f'chunk_size must be >= 1, got {chunk_size}')
        self.chunk_size = chunk_size
        self.score_thr = score_thr
        self.mask_thr = mask_thr
        self.overlap_thr = overlap_thr
        self.mask_score_power = mask_score_power
        self.max_per_image = max_per_image
        if semantic_on and 0 <= semantic_void_value < self.num_classes:
            raise ValueError(
                f'semantic_void_value={semantic_void_value} is a class '
                f'label (num_classes={self.num_classes}); choose a value '
                f'outside [0, {self.num_classes}), e.g. 255')
        self.panoptic_on = panoptic_on
        self.instance_on = instance_on
        self.semantic_on = semantic_on
        self.semantic_void_value = semantic_void_value

    def loss(self, **kwargs) -> dict:
        """The fusion head has no parameters and no training loss."""
        return dict()

    def _query_masks(self,
                     mask_pred: Tensor,
                     queries: Tensor,
                     img_meta: dict,
                     rescale: bool,
                     known: Optional[QueryMasks] = None) -> QueryMasks:
        """Binary masks at the output size of some queries, and their
        score factors, ``chunk_size`` queries at a time: the same values
        as upsampling all at once, without holding K full-size float
        masks. Queries found in ``known`` are copied from it, not
        upsampled again.

        Args:
            mask_pred (Tensor): (N, h, w) mask logits of all queries, see
                :func:`upsample_masks`.
            queries (Tensor): (K, ) long indices into ``mask_pred``.
            img_meta (dict): See :func:`upsample_masks`.
            rescale (bool): Masks at ``ori_shape`` instead of
                ``img_shape``.
            known (QueryMasks, optional): Masks computed before for the
                same image and ``rescale``.

        Returns:
            QueryMasks: For ``queries``, in their order.
        """
        out_h, out_w = output_shape(img_meta, rescale)
        binary = mask_pred.new_empty((len(queries), out_h, out_w),
                                     dtype=torch.bool)
        factor = mask_pred.new_ones(len(queries))
        todo = torch.arange(len(queries), device=queries.device)
        if known is not None and len(known.queries) and len(queries):
            if tuple(known.binary.shape[1:]) != (out_h, out_w):
                raise ValueError(
                    f'known masks are {tuple(known.binary.shape[1:])}, '
                    f'this output is {(out_h, out_w)}')
            row = queries.new_full((len(mask_pred), ), -1)
            row[known.queries] = torch.arange(
                len(known.queries), device=queries.device)
            row = row[queries]
            for have in (row >= 0).nonzero()[:, 0].split(self.chunk_size):
                binary[have] = known.binary[row[have]]
                factor[have] = known.factor[row[have]]
            todo = (row < 0).nonzero()[:, 0]
        for chunk in todo.split(self.chunk_size):
            probs = upsample_masks(mask_pred[queries[chunk]], img_meta,
                                   rescale).sigmoid_()
            factor[chunk] = mask_score_factors(probs, self.mask_thr,
                                               self.mask_score_power)
            binary[chunk] = probs > self.mask_thr
        return QueryMasks(queries, binary, factor)

    def panoptic_postprocess(self,
                             mask_cls: Tensor,
                             mask_pred: Tensor,
                             img_meta: dict,
                             rescale: bool,
                             known: Optional[QueryMasks] = None
                             ) -> PixelData:
        """Panoptic segmentation of one image by mask-wise merging.

        Args:
            mask_cls (Tensor): Class logits of shape (N, num_classes).
            mask_pred (Tensor): Mask logits of shape (N, h, w).
            img_meta (dict): Meta information of the image.
            rescale (bool): Output at ``ori_shape`` instead of
                ``img_shape``.
            known (QueryMasks, optional): Binary masks of some queries,
                computed before (by the instance path), reused.

        Returns:
            :obj:`PixelData`: ``sem_seg`` of shape (1, H, W), long, with
            ``label + k * INSTANCE_OFFSET`` for things, ``label`` for stuff
            and ``num_classes`` for void.
        """
        scores, labels = mask_cls.sigmoid().max(dim=-1)
        # The mask factor is <= 1, so no query dropped here could pass
        # the threshold after it: filtering first is exact and saves
        # upsampling masks that are thrown away.
        keep = (scores >= self.score_thr).nonzero()[:, 0]
        masks = self._query_masks(mask_pred, keep, img_meta, rescale, known)
        pan_seg = mask_wise_merge(
            masks.binary,
            scores[keep] * masks.factor,
            labels[keep],
            num_things_classes=self.num_things_classes,
            num_classes=self.num_classes,
            score_thr=self.score_thr,
            mask_thr=self.mask_thr,
            overlap_thr=self.overlap_thr)
        return PixelData(sem_seg=pan_seg[None])

    def semantic_postprocess(self, pan_results: PixelData) -> PixelData:
        """Semantic segmentation of one image from its panoptic result.

        Args:
            pan_results (:obj:`PixelData`): Output of
                :meth:`panoptic_postprocess`, ``sem_seg`` of shape
                (1, H, W).

        Returns:
            :obj:`PixelData`: ``sem_seg`` of shape (1, H, W), long: the
            label of the segment covering each pixel, or
            ``semantic_void_value`` where no segment does.
        """
        return PixelData(sem_seg=semantic_from_panoptic(
            pan_results.sem_seg, self.num_classes,
            self.semantic_void_value))

    def instance_postprocess(self, mask_cls: Tensor, mask_pred: Tensor,
                             img_meta: dict, rescale: bool) -> InstanceData:
        """Thing instances of one image: top-k (query, thing class) pairs.

        Args:
            mask_cls (Tensor): Class logits of shape (N, num_classes).
            mask_pred (Tensor): Mask logits of shape (N, h, w).
            img_meta (dict): Meta information of the image.
            rescale (bool): Output at ``ori_shape`` instead of
                ``img_shape``.

        Returns:
            :obj:`InstanceData`: With K <= ``max_per_image`` instances:

            - scores (Tensor): Shape (K, ), sorted in descending order.
            - labels (Tensor): Thing labels, long, shape (K, ).
            - bboxes (Tensor): Boxes (x1, y1, x2, y2) of the masks,
              shape (K, 4).
            - masks (Tensor): Binary masks, bool, shape (K, H, W).
        """
        return self._instances(mask_cls, mask_pred, img_meta, rescale)[0]

    def _instances(self, mask_cls: Tensor, mask_pred: Tensor, img_meta: dict,
                   rescale: bool) -> Tuple[InstanceData, QueryMasks]:
        """:meth:`instance_postprocess` (same arguments) and the masks it
        computed, :class:`QueryMasks` of its K' <= K distinct queries, for
        :meth:`panoptic_postprocess` to reuse."""
        num_things = self.num_things_classes
        thing_scores = mask_cls[:, :num_things].sigmoid().flatten()
        num_keep = min(self.max_per_image, thing_scores.numel())
        scores, top_indices = thing_scores.topk(num_keep, sorted=True)
        labels = top_indices % max(num_things, 1)
        query_indices = top_indices // max(num_things, 1)

        # A query may appear with several classes: upsample it once (and,
        # when every query appears once, in score order, with no copy).
        queries, inverse = torch.unique(query_indices, return_inverse=True)
        if len(queries) == len(query_indices):
            queries, inverse = query_indices, None
        masks = self._query_masks(mask_pred, queries, img_meta, rescale)
        binary, factor = masks.binary, masks.factor
        if inverse is not None:
            factor, binary = factor[inverse], binary[inverse]

        results = InstanceData()
        results.bboxes = mask_boxes(binary).to(scores.dtype)
        results.labels = labels
        results.scores = scores * factor
        results.masks = binary
        return results, masks

    def _check_inputs(self, mask_cls_results: Tensor,
                      mask_pred_results: Tensor,
                      batch_data_samples: SampleList) -> None:
        """Raise a ValueError naming expected and actual shapes."""
        if mask_cls_results.dim() != 3 or \
                mask_cls_results.shape[-1] != self.num_classes:
            raise ValueError(
                'mask_cls_results must have shape (B, N, '
                f'{self.num_classes}), got {tuple(mask_cls_results.shape)}')
        if mask_pred_results.dim() != 4 or \
                mask_pred_results.shape[:2] != mask_cls_results.shape[:2]:
            raise ValueError(
                'mask_pred_results must have shape '
                f'{tuple(mask_cls_results.shape[:2])} + (h, w), got '
                f'{tuple(mask_pred_results.shape)}')
        if len(batch_data_samples) != mask_cls_results.shape[0]:
            raise ValueError(
                f'expected {mask_cls_results.shape[0]} data samples, got '
                f'{len(batch_data_samples)}')

    def predict(self,
                mask_cls_results: Tensor,
                mask_pred_results: Tensor,
                batch_data_samples: SampleList,
                rescale: bool = False) -> List[dict]:
        """Post-process a batch of predictions.

        Args:
            mask_cls_results (Tensor): Class logits (sigmoid, no
                background channel) of shape (B, N, num_classes).
            mask_pred_results (Tensor): Mask logits of shape (B, N, h, w)
                on the grid of the padded ``batch_input_shape`` (stride 8).
            batch_data_samples (list[:obj:`DetDataSample`]): Their
                metainfo gives ``batch_input_shape``, ``img_shape`` and
                ``ori_shape``.
            rescale (bool): Results at ``ori_shape`` if True, else at
                ``img_shape``. Defaults to False.

        Returns:
            list[dict]: One dict per image with ``pan_results``
            (:obj:`PixelData`) if ``panoptic_on``, ``ins_results``
            (:obj:`InstanceData`) if ``instance_on`` and ``sem_results``
            (:obj:`PixelData`) if ``semantic_on``; the panoptic merge runs
            once for both of its results, and reuses the full-size masks
            of the queries that are also instances.
        """
        self._check_inputs(mask_cls_results, mask_pred_results,
                           batch_data_samples)
        results = []
        for mask_cls, mask_pred, data_sample in zip(mask_cls_results,
                                                    mask_pred_results,
                                                    batch_data_samples):
            img_meta = data_sample.metainfo
            result, known = dict(), None
            if self.instance_on:
                result['ins_results'], known = self._instances(
                    mask_cls, mask_pred, img_meta, rescale)
            if self.panoptic_on or self.semantic_on:
                pan_results = self.panoptic_postprocess(
                    mask_cls, mask_pred, img_meta, rescale, known)
                if self.panoptic_on:
                    result['pan_results'] = pan_results
                if self.semantic_on:
                    result['sem_results'] = self.semantic_postprocess(
                        pan_results)
            results.append(result)
        return results

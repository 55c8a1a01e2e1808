"""Tiny Panoptic SegFormer configs and synthetic batches for tests."""
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
from mmdet.structures import DetDataSample
from mmdet.structures.mask import BitmapMasks
from mmengine.structures import InstanceData, PixelData


def tiny_panoptic_segformer_cfg(num_things_classes: int = 3,
                                num_stuff_classes: int = 2,
                                num_queries: int = 10,
                                num_levels: int = 3,
                                num_mask_levels: Optional[int] = None,
                                embed_dims: int = 32,
                                deep_supervision: bool = True,
                                backbone_depth: int = 18) -> dict:
    """Config of a Panoptic SegFormer small enough for CPU unit tests.

    ResNet-18 with 16 base channels, ``embed_dims`` 32, 2 heads, 1 encoder,
    2 location-decoder and 2 mask-decoder layers. ``num_levels`` feature
    levels come from ResNet stages 2.. (strides 8, 16, 32) and, beyond
    three, extra stride-2 convs in the neck.
    """
    out_indices = tuple(range(1, min(num_levels, 3) + 1))
    base = 16
    in_channels = [base * 2**i for i in out_indices]
    if num_mask_levels is None:
        num_mask_levels = min(num_levels, 3)
    attn = dict(embed_dims=embed_dims, num_heads=2, num_levels=num_levels,
                num_points=2, batch_first=True)
    ffn = dict(embed_dims=embed_dims, feedforward_channels=64, ffn_drop=0.0)
    return dict(
        type='PanopticSegFormer',
        num_queries=num_queries,
        num_feature_levels=num_levels,
        data_preprocessor=dict(
            type='DetDataPreprocessor',
            mean=[123.675, 116.28, 103.53],
            std=[58.395, 57.12, 57.375],
            bgr_to_rgb=True,
            pad_size_divisor=32,
            pad_mask=True,
            pad_seg=True,
            seg_pad_value=255),
        backbone=dict(
            type='ResNet',
            depth=backbone_depth,
            base_channels=base,
            num_stages=4,
            out_indices=out_indices,
            norm_cfg=dict(type='BN', requires_grad=True),
            norm_eval=False,
            style='pytorch',
            init_cfg=None),
        neck=dict(
            type='ChannelMapper',
            in_channels=in_channels,
            kernel_size=1,
            out_channels=embed_dims,
            act_cfg=None,
            norm_cfg=dict(type='GN', num_groups=8),
            num_outs=num_levels),
        encoder=dict(num_layers=1, layer_cfg=dict(
            self_attn_cfg=attn, ffn_cfg=ffn)),
        decoder=dict(
            num_layers=2,
            return_intermediate=True,
            layer_cfg=dict(
                self_attn_cfg=dict(embed_dims=embed_dims, num_heads=2,
                                   dropout=0.0, batch_first=True),
                cross_attn_cfg=attn,
                ffn_cfg=ffn),
            post_norm_cfg=None),
        positional_encoding=dict(num_feats=embed_dims // 2, normalize=True,
                                 offset=-0.5),
        bbox_head=dict(
            type='PanopticSegFormerHead',
            num_things_classes=num_things_classes,
            num_stuff_classes=num_stuff_classes,
            embed_dims=embed_dims,
            num_mask_levels=num_mask_levels,
            mask_decoder=dict(num_layers=2, num_heads=2,
                              feedforward_channels=64, dropout=0.0),
            deep_supervision=deep_supervision),
        panoptic_fusion_head=dict(
            type='PanopticSegFormerFusionHead',
            num_things_classes=num_things_classes,
            num_stuff_classes=num_stuff_classes),
        train_cfg=dict(assigner=dict(
            type='PanopticSegFormerAssigner',
            match_costs=[
                dict(type='mmdet.FocalLossCost', weight=1.0),
                dict(type='mmdet.DiceCost', weight=1.0, pred_act=True,
                     naive_dice=False)
            ])),
        test_cfg=dict())


def _rect_mask(shape: Tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    h, w = shape
    y0, x0 = rng.integers(0, h // 2), rng.integers(0, w // 2)
    y1, x1 = rng.integers(y0 + 4, h + 1), rng.integers(x0 + 4, w + 1)
    mask = np.zeros(shape, dtype=np.uint8)
    mask[y0:y1, x0:x1] = 1
    return mask


def demo_panoptic_batch(image_shapes: Sequence[Tuple[int, int]] = ((60, 68),
                                                                   (52, 76)),
                        num_things: Sequence[int] = (2, 1),
                        stuff_labels: Sequence[Sequence[int]] = ((3, 4), (3,)),
                        num_things_classes: int = 3,
                        seed: int = 0) -> dict:
    """A batch in the format the data preprocessor takes.

    Each image gets ``num_things[i]`` rectangular things (labels below
    ``num_things_classes``) and a semantic map whose pixels outside the
    things are split between ``stuff_labels[i]`` (255 where none is given).

    Returns:
        dict: ``inputs`` (list of (3, H, W) uint8 tensors) and
        ``data_samples`` (list of :class:`DetDataSample` with
        ``gt_instances`` and ``gt_sem_seg``).
    """
    rng = np.random.default_rng(seed)
    inputs: List[torch.Tensor] = []
    samples: List[DetDataSample] = []
    for shape, n_things, stuff in zip(image_shapes, num_things,
                                      stuff_labels):
        h, w = shape
        inputs.append(torch.from_numpy(
            rng.integers(0, 255, (3, h, w), dtype=np.uint8)))
        masks = np.stack([_rect_mask(shape, rng) for _ in range(n_things)]) \
            if n_things else np.zeros((0, h, w), dtype=np.uint8)
        sem = np.full(shape, 255, dtype=np.int64)
        for k, label in enumerate(stuff):
            sem[k * h // len(stuff):(k + 1) * h // len(stuff)] = label
        sem[masks.any(0)] = 255
        ys, xs = [], []
        bboxes = np.zeros((n_things, 4), dtype=np.float32)
        for i, m in enumerate(masks):
            ys, xs = np.nonzero(m)
            bboxes[i] = [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
        sample = DetDataSample(metainfo=dict(
            img_shape=shape, ori_shape=shape, scale_factor=(1.0, 1.0),
            img_id=len(samples), img_path=f'demo_{len(samples)}.jpg'))
        sample.gt_instances = InstanceData(
            labels=torch.from_numpy(
                rng.integers(0, num_things_classes, n_things)).long(),
            bboxes=torch.from_numpy(bboxes),
            masks=BitmapMasks(masks, h, w))
        sample.gt_sem_seg = PixelData(sem_seg=torch.from_numpy(sem)[None])
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


def untrained_model(cfg):
    """The model of a detector config, built and initialised for tests that
    need maps with segments but no training.

    Seed 0, ``init_weights`` (without it some parameters, e.g.
    ``level_embed``, would hold uninitialised memory, NaN at times), a
    random backbone (``init_cfg`` dropped: a pretrained file such as the toy
    quick start's is not needed), and zero class biases: the focal-loss
    prior of ``init_weights`` (scores near 0.01) is undone, so queries score
    around 0.5-0.8 and the default thresholds give maps with segments.

    Args:
        cfg (Config): A config with ``model``; its backbone ``init_cfg`` is
            set to None.
    """
    from mmdet.registry import MODELS
    from mmengine.registry import DefaultScope
    torch.manual_seed(0)
    cfg.model.backbone.init_cfg = None
    # mmdet's scope whatever scope a runner built before left current
    with DefaultScope.overwrite_default_scope('mmdet'):
        model = MODELS.build(cfg.model)
    model.init_weights()
    torch.nn.init.zeros_(model.bbox_head.cls_branch.bias)
    return model

"""Pretraining of the toy backbone on crops of the training things.

Command line: ``python projects/toy_panoptic/pretrain_backbone.py``.

The paper's backbones start from ImageNet; this is the toy's counterpart.
The detector classifies a thing from features averaged over where its
query attends, i.e. over the thing, wherever it lies and whatever its size.
From scratch, a backbone needs about a thousand steps of a direct
classification loss before it tells the outlines apart that way, more than
the detector's set loss gives it in the quick start's budget (project
README, "What limits things"). So the quick start first trains the config's
backbone with a linear classifier on crops around the training things, at
their native size, up to 16 px off the crop centre, with every stage the
detector reads averaged over the thing's mask (``--scale native --jitter
16 --pool mask``, the defaults), and saves it for the detector's
``model.backbone.init_cfg`` (mmengine's ``Pretrained``). Only the training
split is read; 500 of its things are held out to report the accuracy.

``--scale fit`` scales each crop so that the thing fills it (MNIST-like),
``--pool mean`` averages the last stage over the whole crop: the variants
of the README's table.
"""
import os
import os.path as osp
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .thing_crops import ThingCrops, pooled_features

DEFAULT_CONFIG = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))),
                          'configs',
                          'panoptic-segformer_r18-tiny_toy-panoptic.py')


def pretrain_backbone(data_root, out_file=None, config=DEFAULT_CONFIG,
                      scale='native', jitter=16.0, pool='mask', iters=1800,
                      batch_size=64, lr=1e-3, crop_size=64, held_out=500,
                      log_interval=300, seed=0, meta=None):
    """Train the config's backbone (from scratch) and a linear classifier
    on thing crops; optionally save the backbone.

    Args:
        data_root (str): Toy data set root.
        out_file (str, optional): Receives ``{'state_dict': backbone
            weights, 'meta': ...}``, written under a temporary name and
            renamed, so an interrupted run never leaves half a file.
        config (str | Config): Detector config giving ``model.backbone``
            and the data preprocessor's normalisation.
        scale, jitter, pool: See :class:`ThingCrops` and
            :func:`pooled_features`.
        iters (int): AdamW steps of ``batch_size`` crops.
        held_out (int): Training things kept aside for the accuracy.
        log_interval (int): Steps between progress lines.
        seed (int): Seed of initialisation, crop order and jitter.
        meta (dict, optional): Stored with the weights under ``meta``.

    Returns:
        dict: ``curve`` ((step, held-out accuracy) pairs), ``held_out_acc``
        (the last), ``seconds``.
    """
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    from mmengine.config import Config
    register_all_modules()
    torch.manual_seed(seed)
    cfg = Config.fromfile(config) if isinstance(config, str) else config
    backbone_cfg = cfg.model.backbone.copy()
    backbone_cfg.init_cfg = None
    # how the detector fine-tunes the backbone is not how it is pretrained
    if 'frozen_stages' in backbone_cfg:
        backbone_cfg.frozen_stages = -1
    if 'norm_eval' in backbone_cfg:
        backbone_cfg.norm_eval = False
    backbone = MODELS.build(backbone_cfg)
    backbone.init_weights()
    # NHWC: oneDNN's convolutions run faster on it (5-10% per step here)
    backbone.to(memory_format=torch.channels_last)
    prep = cfg.model.data_preprocessor
    crops = ThingCrops(data_root, 'train', crop_size, scale, jitter,
                       prep.mean, prep.std, seed)
    order = np.random.default_rng(seed).permutation(len(crops.anns))
    held_out = min(held_out, max(1, len(order) // 5))
    test_ids, train_ids = order[:held_out], order[held_out:]
    test_batch = crops.batch(test_ids)
    with torch.no_grad():
        backbone.eval()
        width = pooled_features(backbone(test_batch[0][:1]), test_batch[1][:1],
                                pool).size(1)
    head = nn.Linear(width, len(crops.label_of))
    params = list(backbone.parameters()) + list(head.parameters())
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=1e-4)
    rng = np.random.default_rng(seed + 1)
    curve, start = [], time.time()
    for step in range(1, iters + 1):
        backbone.train()
        imgs, masks, labels = crops.batch(rng.choice(train_ids, batch_size))
        imgs = imgs.contiguous(memory_format=torch.channels_last)
        logits = head(pooled_features(backbone(imgs), masks, pool))
        loss = F.cross_entropy(logits, labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % log_interval == 0 or step == iters:
            backbone.eval()
            with torch.no_grad():
                logits = head(pooled_features(backbone(test_batch[0]),
                                              test_batch[1], pool))
            acc = float((logits.argmax(1) == test_batch[2]).float().mean())
            curve.append((step, acc))
            print(f'  [{step}/{iters}] loss {loss.item():.3f}  held-out '
                  f'accuracy {acc:.3f}  {time.time() - start:.0f} s',
                  flush=True)
    seconds = time.time() - start
    if out_file:
        os.makedirs(osp.dirname(osp.abspath(out_file)), exist_ok=True)
        info = dict(curve=curve, scale=scale, jitter=jitter, pool=pool,
                    iters=iters, **(meta or {}))
        state_dict = {k: v.contiguous()
                      for k, v in backbone.state_dict().items()}
        torch.save(dict(state_dict=state_dict, meta=info),
                   out_file + '.tmp')
        os.replace(out_file + '.tmp', out_file)
    return dict(curve=curve, held_out_acc=curve[-1][1], seconds=seconds)

"""Pretrain the toy backbone on crops of the training things.

    python projects/toy_panoptic/pretrain_backbone.py [--out FILE]
        [--iters 1800] [--scale native|fit] [--jitter PX] [--pool mask|mean]

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
import argparse
import json
import os
import os.path as osp
import time

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from pycocotools import mask as mask_utils
from torch import nn

HERE = osp.dirname(osp.abspath(__file__))
DEFAULT_CONFIG = osp.join(HERE, 'configs',
                          'panoptic-segformer_r18-tiny_toy-panoptic.py')


class ThingCrops:
    """Crops (image, mask, label) around the things of a toy split.

    Args:
        data_root (str): Toy data set root (``annotations/instances_*.json``
            and the images).
        split (str): ``train`` or ``val``.
        crop_size (int): Side S of a crop.
        scale (str): ``fit`` (longer box side -> S / 1.3) or ``native``.
        jitter (float): Largest shift of the thing off the centre, pixels of
            the crop.
        mean, std (sequence[float]): RGB normalisation of the detector.
        seed (int): Seed of the jitter.
    """

    def __init__(self, data_root, split='train', crop_size=64,
                 scale='native', jitter=0.0, mean=(123.675, 116.28, 103.53),
                 std=(58.395, 57.12, 57.375), seed=0):
        ann_file = osp.join(data_root, 'annotations',
                            f'instances_{split}.json')
        if not osp.isfile(ann_file):
            raise FileNotFoundError(
                f'{ann_file} not found: write the data set first '
                '(python tools/dataset_converters/make_toy_panoptic.py)')
        with open(ann_file) as f:
            coco = json.load(f)
        if scale not in ('fit', 'native'):
            raise ValueError(f'scale must be fit or native, got {scale!r}')
        self.images = {img['id']: img for img in coco['images']}
        self.img_dir = osp.join(data_root, split)
        cat_ids = sorted(cat['id'] for cat in coco['categories'])
        self.label_of = {cat_id: i for i, cat_id in enumerate(cat_ids)}
        self.anns = [ann for ann in coco['annotations'] if ann['area'] > 0]
        if len(self.anns) < 2:
            raise ValueError(
                f'{ann_file} lists {len(self.anns)} thing(s); pretraining '
                'needs at least 2 (or train from scratch: quickstart.py '
                '--pretrain-iters 0)')
        self.crop_size, self.scale, self.jitter = crop_size, scale, jitter
        self.mean = np.asarray(mean, np.float32)
        self.std = np.asarray(std, np.float32)
        self.rng = np.random.default_rng(seed)
        self._cache = {}

    def _image(self, image_id):
        if image_id not in self._cache:
            path = osp.join(self.img_dir, self.images[image_id]['file_name'])
            img = cv2.imread(path, cv2.IMREAD_COLOR)
            if img is None:
                raise OSError(f'cannot read {path}: regenerate the data set')
            self._cache[image_id] = img[..., ::-1]
        return self._cache[image_id]

    def _mask(self, ann):
        info = self.images[ann['image_id']]
        rle = ann['segmentation']
        if isinstance(rle, list) or isinstance(rle.get('counts'), list):
            rle = mask_utils.frPyObjects(rle, info['height'], info['width'])
        mask = mask_utils.decode(rle)
        return (mask.max(-1) if mask.ndim == 3 else mask).astype(np.float32)

    def __getitem__(self, index):
        """(3, S, S) float image, (1, S, S) mask and the class index."""
        ann = self.anns[index]
        x, y, w, h = ann['bbox']
        size = self.crop_size
        zoom = size / (1.3 * max(w, h, 1)) if self.scale == 'fit' else 1.0
        shift = self.rng.uniform(-self.jitter, self.jitter, 2)
        warp = np.float32(
            [[zoom, 0, size / 2 + shift[0] - (x + w / 2) * zoom],
             [0, zoom, size / 2 + shift[1] - (y + h / 2) * zoom]])
        img = cv2.warpAffine(self._image(ann['image_id']), warp, (size, size),
                             borderMode=cv2.BORDER_REFLECT)
        mask = cv2.warpAffine(self._mask(ann), warp, (size, size))
        img = (img.astype(np.float32) - self.mean) / self.std
        return (torch.from_numpy(img.transpose(2, 0, 1).copy()),
                torch.from_numpy(mask)[None],
                self.label_of[ann['category_id']])

    def batch(self, indices):
        imgs, masks, labels = zip(*(self[i] for i in indices))
        return torch.stack(imgs), torch.stack(masks), torch.tensor(labels)


def pooled_features(feats, masks, pool):
    """(B, C') features of a crop batch: the last stage averaged over the
    crop (``mean``) or every stage averaged over the thing (``mask``)."""
    if pool == 'mean':
        return feats[-1].mean(dim=(2, 3))
    out = []
    for feat in feats:
        weight = F.interpolate(masks, size=feat.shape[-2:], mode='area')
        weight = weight / weight.sum(dim=(2, 3), keepdim=True).clamp(1e-6)
        out.append((feat * weight).sum(dim=(2, 3)))
    return torch.cat(out, dim=1)


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
    backbone = MODELS.build(backbone_cfg)
    backbone.init_weights()
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
        torch.save(dict(state_dict=backbone.state_dict(), meta=info),
                   out_file + '.tmp')
        os.replace(out_file + '.tmp', out_file)
    return dict(curve=curve, held_out_acc=curve[-1][1], seconds=seconds)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--config', default=DEFAULT_CONFIG)
    parser.add_argument('--data-root', default='data/toy_panoptic')
    parser.add_argument('--out', help='where to save the backbone, e.g. '
                        'work_dirs/toy_panoptic/pretrain/r18-tiny_things.pth')
    parser.add_argument('--scale', choices=('fit', 'native'),
                        default='native')
    parser.add_argument('--jitter', type=float, default=16.0)
    parser.add_argument('--pool', choices=('mean', 'mask'), default='mask')
    parser.add_argument('--iters', type=int, default=1800)
    parser.add_argument('--crop-size', type=int, default=64)
    parser.add_argument('--log-interval', type=int, default=100)
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args(argv)
    print(f'thing crops: scale {args.scale}, jitter {args.jitter:g} px, '
          f'pool {args.pool}, {args.iters} steps of 64 crops')
    result = pretrain_backbone(
        args.data_root, args.out, args.config, args.scale, args.jitter,
        args.pool, args.iters, crop_size=args.crop_size,
        log_interval=args.log_interval, seed=args.seed)
    if args.out:
        print(f'written: {osp.abspath(args.out)}')
    return result


if __name__ == '__main__':
    main()

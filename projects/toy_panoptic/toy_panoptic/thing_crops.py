"""Crops around the things of a toy split, and the features pooled from
them, for the backbone pretraining of :mod:`.pretrain`."""
import json
import os.path as osp

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from pycocotools import mask as mask_utils


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
            # a contiguous RGB copy: OpenCV copies a reversed-channel
            # view on every warp (8x the time of the warp itself)
            self._cache[image_id] = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
        return self._cache[image_id]

    def _mask(self, ann):
        info = self.images[ann['image_id']]
        rle = ann['segmentation']
        if isinstance(rle, list) or isinstance(rle.get('counts'), list):
            rle = mask_utils.frPyObjects(rle, info['height'], info['width'])
        mask = mask_utils.decode(rle)
        return (mask.max(-1) if mask.ndim == 3 else mask).astype(np.float32)

    def _warp(self, index):
        """(S, S, 3) uint8 RGB crop, (S, S) float mask and the class
        index of thing ``index``."""
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
        return img, mask, self.label_of[ann['category_id']]

    def _normalise(self, imgs):
        """(K, S, S, 3) uint8 -> (K, 3, S, S) float, normalised, in
        channels-last memory (a permuted view of the NHWC data)."""
        imgs = torch.from_numpy(imgs).float()
        mean, std = torch.from_numpy(self.mean), torch.from_numpy(self.std)
        return ((imgs - mean) / std).permute(0, 3, 1, 2)

    def __getitem__(self, index):
        """(3, S, S) float image, (1, S, S) mask and the class index."""
        img, mask, label = self._warp(index)
        return (self._normalise(img[None])[0], torch.from_numpy(mask)[None],
                label)

    def batch(self, indices):
        """(K, 3, S, S) float images (channels-last memory), (K, 1, S, S)
        masks and (K, ) class indices of the things ``indices``, in one
        normalisation."""
        imgs, masks, labels = zip(*(self._warp(i) for i in indices))
        return (self._normalise(np.stack(imgs)),
                torch.from_numpy(np.stack(masks))[:, None],
                torch.tensor(labels))


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

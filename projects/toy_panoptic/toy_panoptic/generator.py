"""Synthetic COCO-panoptic "toy" data set for smoke training and tests.

Things are shapes (``circle``, ``triangle``, ``square``) told apart by
their outline only: every instance gets a random colour and shading, is
rotated, may be cut by the image border and occludes the ones drawn before
it (each keeps at least ``min_visible`` of its in-image area). Stuff
(``sky``, ``ground``, ``water``) fills the background in 1-3 bands split by
wavy, tilted boundaries; each stuff class has a characteristic texture
(smooth clouds, grain, horizontal ripples) under a random tint. Every pixel
belongs to exactly one segment: there is no void. A fraction of the images
holds no thing at all, another adds small "clutter" things (annotated).

Layout written under ``out_dir`` mirrors COCO, so that mmdet's stock
``CocoPanopticDataset``, ``CocoPanopticMetric`` and ``CocoMetric`` read it
unchanged::

    out_dir/
    ├── toy_meta.json                   # generation parameters
    ├── train/000001.jpg ...            # JPEG images
    ├── val/000401.jpg ...
    └── annotations/
        ├── panoptic_train.json         # COCO panoptic
        ├── panoptic_val.json
        ├── instances_train.json        # COCO detection, RLE thing masks
        ├── instances_val.json
        ├── panoptic_train/000001.png   # id = R + 256 * G + 256 ** 2 * B
        └── panoptic_val/000401.png

Image ids start at 1 and continue from train into val; segment ids are
unique over the whole data set and a thing's segment id is also its
annotation id in ``instances_*.json``. Category ids are 1-3 (things) then
4-6 (stuff), in the order of ``TOY_METAINFO['classes']``
(:mod:`.metainfo`, which the toy configs inherit); paths for configs and
metrics follow :func:`split_paths`.
"""
import json
import math
import os
import os.path as osp
import re

import cv2
import numpy as np
from pycocotools import mask as mask_utils

from .metainfo import metainfo as TOY_METAINFO
from .render import THING_CLASSES, render_sample

CATEGORIES = [
    dict(id=i + 1, name=name, isthing=int(i < len(THING_CLASSES)),
         supercategory='shape' if i < len(THING_CLASSES) else 'scene',
         color=list(TOY_METAINFO['palette'][i]))
    for i, name in enumerate(TOY_METAINFO['classes'])
]
GENERATOR_VERSION = 1
SPLITS = ('train', 'val')
_FILE_RE = re.compile(r'^\d{6,}\.(jpg|png)$')


def split_paths(out_dir, split):
    """Paths of one split, as written by :func:`make_toy_panoptic`.

    Args:
        out_dir (str): Root folder of the data set (mmdet ``data_root``).
        split (str): ``'train'`` or ``'val'``.

    Returns:
        dict: ``img_dir``, ``seg_dir``, ``panoptic_json``, ``instances_json``.
    """
    ann_dir = osp.join(out_dir, 'annotations')
    return dict(
        img_dir=osp.join(out_dir, split),
        seg_dir=osp.join(ann_dir, f'panoptic_{split}'),
        panoptic_json=osp.join(ann_dir, f'panoptic_{split}.json'),
        instances_json=osp.join(ann_dir, f'instances_{split}.json'))


def id2rgb(id_map):
    """Encode ids (H, W) as uint8 RGB (H, W, 3), id = R + 256 G + 256^2 B."""
    id_map = id_map.astype(np.int64)
    return np.stack([id_map % 256, id_map // 256 % 256, id_map // 65536 % 256],
                    axis=-1).astype(np.uint8)


def _segment_record(mask, seg_id, cat_id):
    """Area and COCO ``[x, y, w, h]`` bbox of a non-empty binary mask."""
    ys = np.flatnonzero(mask.any(axis=1))
    xs = np.flatnonzero(mask.any(axis=0))
    bbox = [int(xs[0]), int(ys[0]), int(xs[-1] - xs[0] + 1),
            int(ys[-1] - ys[0] + 1)]
    return dict(id=seg_id, category_id=cat_id, area=int(mask.sum()),
                bbox=bbox, iscrowd=0)


def _write_split(out_dir, split, split_code, num, first_img_id, first_seg_id,
                 params):
    """Generate one split and write its images, PNGs and both JSON files.

    Returns:
        tuple[dict, int]: Paths of the split and the next free segment id.
    """
    paths = split_paths(out_dir, split)
    os.makedirs(paths['img_dir'], exist_ok=True)
    os.makedirs(paths['seg_dir'], exist_ok=True)
    w, h = params['img_size']
    seed = params['seed']
    split_rng = np.random.default_rng([seed, split_code, 1, 0])
    order = split_rng.permutation(num)
    num_empty = math.ceil(params['stuff_only_ratio'] * num)
    num_cluttered = math.ceil(params['clutter_ratio'] * (num - num_empty))
    empty = set(order[:num_empty].tolist())
    cluttered = set(order[num_empty:num_empty + num_cluttered].tolist())
    images, pan_anns, inst_anns = [], [], []
    seg_id = first_seg_id
    for i in range(num):
        rng = np.random.default_rng([seed, split_code, 0, i])
        num_things = 0 if i in empty else int(
            rng.integers(1, params['max_instances'] + 1))
        num_clutter = int(rng.integers(2, 5)) if i in cluttered else 0
        img, seg, cat_ids = render_sample(
            rng, h, w, num_things, num_clutter, params['size_range'],
            params['clutter_size_range'], params['min_visible'])
        img_id = first_img_id + i
        name = f'{img_id:06d}'
        id_map = np.zeros((h, w), np.int64)
        segments = []
        for k, cat_id in enumerate(cat_ids):
            mask = seg == k
            if not mask.any():
                continue
            id_map[mask] = seg_id
            segments.append(_segment_record(mask, seg_id, cat_id))
            if cat_id <= len(THING_CLASSES):
                rle = mask_utils.encode(np.asfortranarray(mask, np.uint8))
                inst_anns.append(dict(
                    segments[-1], image_id=img_id,
                    segmentation=dict(size=[h, w],
                                      counts=rle['counts'].decode())))
            seg_id += 1
        # Things first, as in the category order.
        segments.sort(key=lambda s: (s['category_id'] > len(THING_CLASSES),
                                     s['id']))
        cv2.imwrite(osp.join(paths['img_dir'], name + '.jpg'),
                    img[..., ::-1],
                    [cv2.IMWRITE_JPEG_QUALITY, params['jpeg_quality']])
        cv2.imwrite(osp.join(paths['seg_dir'], name + '.png'),
                    id2rgb(id_map)[..., ::-1])
        images.append(dict(id=img_id, file_name=name + '.jpg', width=w,
                           height=h))
        pan_anns.append(dict(image_id=img_id, file_name=name + '.png',
                             segments_info=segments))
    info = dict(description=f'panseg_plugin toy panoptic {split}',
                version=str(GENERATOR_VERSION), seed=seed)
    _dump(paths['panoptic_json'],
          dict(info=info, licenses=[], images=images, annotations=pan_anns,
               categories=CATEGORIES))
    _dump(paths['instances_json'],
          dict(info=info, licenses=[], images=images, annotations=inst_anns,
               categories=[c for c in CATEGORIES if c['isthing']]))
    return paths, seg_id


def _dump(path, obj):
    """Write compact JSON (byte-identical for identical ``obj``)."""
    with open(path, 'w') as f:
        json.dump(obj, f, separators=(',', ':'))


def _previous_files(out_dir):
    """Files of an earlier run in ``out_dir``: only names this module
    writes, so that nothing else is ever deleted."""
    found = []
    for split in SPLITS:
        paths = split_paths(out_dir, split)
        for key in ('img_dir', 'seg_dir'):
            if osp.isdir(paths[key]):
                found += [
                    osp.join(paths[key], name)
                    for name in sorted(os.listdir(paths[key]))
                    if _FILE_RE.match(name)
                ]
        found += [
            paths[key] for key in ('panoptic_json', 'instances_json')
            if osp.isfile(paths[key])
        ]
    return found


def make_toy_panoptic(out_dir,
                      num_train=400,
                      num_val=50,
                      img_size=128,
                      seed=0,
                      max_instances=5,
                      size_range=(0.15, 0.45),
                      clutter_size_range=(0.07, 0.13),
                      min_visible=0.35,
                      stuff_only_ratio=0.1,
                      clutter_ratio=0.2,
                      jpeg_quality=90,
                      overwrite=False):
    """Write the toy panoptic data set (layout in the module docstring).

    The same arguments give byte-identical files. When ``out_dir`` already
    holds a complete run with the same arguments (recorded in
    ``toy_meta.json``) nothing is written unless ``overwrite``; otherwise
    the files of an earlier run there are replaced. Only files inside
    ``out_dir`` are ever deleted.

    Args:
        out_dir (str): Output folder, the ``data_root`` of configs.
        num_train (int): Number of training images. Defaults to 400.
        num_val (int): Number of validation images. Defaults to 50.
        img_size (int | tuple[int, int]): Image size, an int for square
            images or ``(width, height)``. Defaults to 128.
        seed (int): Non-negative random seed. Defaults to 0.
        max_instances (int): Most regular things per image (at least 1 in
            images that are not stuff-only). Defaults to 5.
        size_range (tuple[float, float]): Extent of regular things as a
            fraction of the shorter image side. Defaults to (0.15, 0.45).
        clutter_size_range (tuple[float, float]): Extent of the 2-4 small
            clutter things. Defaults to (0.07, 0.13).
        min_visible (float): Least visible fraction of the in-image area of
            each thing under occlusion. Defaults to 0.35.
        stuff_only_ratio (float): Fraction of images without things,
            rounded up. Defaults to 0.1.
        clutter_ratio (float): Fraction of the other images with clutter,
            rounded up. Defaults to 0.2.
        jpeg_quality (int): JPEG quality of the images. Defaults to 90.
        overwrite (bool): Regenerate even when a matching run exists.
            Defaults to False.

    Returns:
        dict: ``data_root``, ``meta_file``, ``skipped`` (True when an
        existing run was kept) and, for ``'train'`` and ``'val'``, the dict
        of :func:`split_paths`.
    """
    w, h = (img_size, img_size) if isinstance(img_size, int) else img_size
    if seed < 0 or w < 16 or h < 16:
        raise ValueError(f'need seed >= 0 and a size of at least 16 px, got '
                         f'seed={seed}, img_size={img_size}')
    params = dict(
        generator_version=GENERATOR_VERSION, num_train=int(num_train),
        num_val=int(num_val), img_size=[int(w), int(h)], seed=int(seed),
        max_instances=int(max_instances),
        size_range=[float(v) for v in size_range],
        clutter_size_range=[float(v) for v in clutter_size_range],
        min_visible=float(min_visible),
        stuff_only_ratio=float(stuff_only_ratio),
        clutter_ratio=float(clutter_ratio), jpeg_quality=int(jpeg_quality))
    meta_file = osp.join(out_dir, 'toy_meta.json')
    result = dict(data_root=out_dir, meta_file=meta_file,
                  **{s: split_paths(out_dir, s) for s in SPLITS})
    if not overwrite and osp.isfile(meta_file):
        with open(meta_file) as f:
            done = json.load(f) == dict(params, complete=True)
        num_files = 4 + 2 * (params['num_train'] + params['num_val'])
        if done and len(_previous_files(out_dir)) == num_files:
            return dict(result, skipped=True)
    os.makedirs(out_dir, exist_ok=True)
    if osp.isfile(meta_file):  # an earlier run of ours: drop its files
        for path in _previous_files(out_dir):
            os.remove(path)
    _dump(meta_file, dict(params, complete=False))
    _, next_seg_id = _write_split(out_dir, 'train', 0, num_train, 1, 1,
                                  params)
    _write_split(out_dir, 'val', 1, num_val, num_train + 1, next_seg_id,
                 params)
    _dump(meta_file, dict(params, complete=True))
    return dict(result, skipped=False)

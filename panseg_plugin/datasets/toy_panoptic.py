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
4-6 (stuff), in the order of ``TOY_METAINFO['classes']``.

``TOY_METAINFO`` is the ``metainfo`` of the dataset configs; paths for
configs and metrics follow :func:`split_paths`.
"""
import json
import math
import os
import os.path as osp
import re

import cv2
import numpy as np
from pycocotools import mask as mask_utils

THING_CLASSES = ('circle', 'triangle', 'square')
STUFF_CLASSES = ('sky', 'ground', 'water')
TOY_METAINFO = dict(
    classes=THING_CLASSES + STUFF_CLASSES,
    thing_classes=THING_CLASSES,
    stuff_classes=STUFF_CLASSES,
    palette=[(220, 20, 60), (0, 160, 60), (250, 170, 30), (120, 180, 240),
             (140, 100, 60), (20, 60, 160)])
CATEGORIES = [
    dict(id=i + 1, name=name, isthing=int(i < len(THING_CLASSES)),
         supercategory='shape' if i < len(THING_CLASSES) else 'scene',
         color=list(TOY_METAINFO['palette'][i]))
    for i, name in enumerate(TOY_METAINFO['classes'])
]
GENERATOR_VERSION = 1
SPLITS = ('train', 'val')
# Base colours of the stuff textures before the random tint (RGB).
_STUFF_BASE = np.array([[135, 185, 235], [125, 95, 60], [40, 95, 150]],
                       np.float32)
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


def _smooth_noise(rng, h, w, cells):
    """Zero-mean noise of shape (H, W) varying over ``cells`` cells."""
    coarse = rng.standard_normal((max(cells * h // w, 2), max(cells, 2)))
    return cv2.resize(coarse.astype(np.float32), (w, h),
                      interpolation=cv2.INTER_CUBIC)


def _stuff_layout(rng, h, w):
    """Split the image into 1-3 horizontal bands with wavy boundaries.

    Returns:
        np.ndarray: Stuff index (0 ``sky``, 1 ``ground``, 2 ``water``) per
        pixel, int64 of shape (H, W).
    """
    num_bands = int(rng.choice([1, 2, 3], p=[0.15, 0.45, 0.4]))
    classes = rng.permutation(len(STUFF_CLASSES))[:num_bands]
    xs = np.arange(w, dtype=np.float32)
    band = np.zeros((h, w), np.int64)
    ys = np.arange(h, dtype=np.float32)[:, None]
    slot = 0.7 * h / max(num_bands - 1, 1)
    for b in range(num_bands - 1):
        y0 = 0.15 * h + slot * (b + rng.uniform(0.2, 0.8))
        curve = (y0 + rng.uniform(-0.25, 0.25) * (xs - w / 2) +
                 rng.uniform(0, 0.07) * h *
                 np.sin(2 * np.pi * rng.uniform(0.5, 2.5) * xs / w +
                        rng.uniform(0, 2 * np.pi)))
        band += ys >= curve[None]
    return classes[band]


def _stuff_texture(rng, stuff, yy, xx):
    """Render the texture of one stuff class over the whole image.

    Args:
        rng (np.random.Generator): Random generator.
        stuff (int): Stuff index into ``STUFF_CLASSES``.
        yy (np.ndarray): Row coordinates, float32 of shape (H, W).
        xx (np.ndarray): Column coordinates, float32 of shape (H, W).

    Returns:
        np.ndarray: float32 RGB image of shape (H, W, 3).
    """
    h, w = yy.shape
    tint = rng.uniform(0, 0.45)
    colour = (1 - tint) * _STUFF_BASE[stuff] + tint * rng.uniform(0, 255, 3)
    if stuff == 0:  # sky: vertical gradient and soft clouds
        shade = 1.15 - 0.3 * yy / h
        img = colour * shade[..., None]
        clouds = np.clip(_smooth_noise(rng, h, w, 4) - 0.3, 0, 1)
        img += (255 - img) * (0.6 * clouds)[..., None]
    elif stuff == 1:  # ground: coarse grain and dark pebbles
        grain = _smooth_noise(rng, h, w, max(w // 3, 2))
        pebbles = (_smooth_noise(rng, h, w, max(w // 6, 2)) > 1.2) * -0.35
        img = colour * (1 + 0.18 * grain + pebbles)[..., None]
    else:  # water: horizontal ripples bent by a slow wave
        period = rng.uniform(4, 8)
        phase = (2 * np.pi * yy / period + 1.5 * np.sin(
            2 * np.pi * xx / (w * rng.uniform(0.3, 0.8)) +
            rng.uniform(0, 2 * np.pi)))
        img = colour * (1 + 0.22 * np.sin(phase))[..., None] + 15
    return img


def _thing_polygon(rng, thing, size, cx, cy):
    """Vertices (N, 2) in (x, y) of a rotated shape of extent ``size``."""
    angle = rng.uniform(0, 2 * np.pi)
    if thing == 0:  # circle, slightly elliptic
        t = np.linspace(0, 2 * np.pi, 48, endpoint=False)
        radii = np.array([0.5, 0.5 * rng.uniform(0.8, 1.0)]) * size
    elif thing == 1:  # triangle, roughly equilateral
        t = np.arange(3) * 2 * np.pi / 3 + rng.uniform(-0.25, 0.25, 3)
        radii = np.array([0.6, 0.6]) * size
    else:  # square, slightly rectangular
        t = np.array([0.25, 0.75, 1.25, 1.75]) * np.pi
        radii = np.array([0.5, 0.5 * rng.uniform(0.8, 1.0)]) * size * 0.9
    pts = np.stack([np.cos(t) * radii[0], np.sin(t) * radii[1]], axis=1)
    rot = np.array([[np.cos(angle), -np.sin(angle)],
                    [np.sin(angle), np.cos(angle)]])
    return pts @ rot.T + np.array([cx, cy])


def _place_things(rng, h, w, sizes, min_visible, max_tries=20):
    """Drop shapes one by one, later ones on top, keeping all visible.

    A candidate is refused when less than half of it lies inside the image
    or when it would leave an earlier shape with less than ``min_visible``
    of its in-image area.

    Args:
        rng (np.random.Generator): Random generator.
        h (int): Image height.
        w (int): Image width.
        sizes (list[tuple[float, float]]): Size range of each shape to
            place, as fractions of the shorter image side.
        min_visible (float): Least visible fraction of each shape.
        max_tries (int): Candidates drawn per shape before giving up on it.

    Returns:
        tuple[np.ndarray, list[int]]: Index of the shape on top of each
        pixel (-1 for none), int64 of shape (H, W), and the thing class of
        each placed shape.
    """
    top = np.full((h, w), -1, np.int64)
    classes, areas, visible = [], [], []
    side = min(h, w)
    for low, high in sizes:
        for _ in range(max_tries):
            thing = int(rng.integers(len(THING_CLASSES)))
            size = rng.uniform(low, high) * side
            cx = rng.uniform(-0.2 * size, w + 0.2 * size)
            cy = rng.uniform(-0.2 * size, h + 0.2 * size)
            pts = _thing_polygon(rng, thing, size, cx, cy)
            mask = np.zeros((h, w), np.uint8)
            cv2.fillPoly(mask, [np.round(pts * 16).astype(np.int32)], 1,
                         lineType=cv2.LINE_8, shift=4)
            mask = mask.astype(bool)
            inside = int(mask.sum())
            if inside < max(0.5 * cv2.contourArea(pts.astype(np.float32)),
                            16):
                continue
            under = top[mask]
            hidden = np.bincount(under[under >= 0], minlength=len(classes))
            left = np.asarray(visible, np.int64) - hidden
            if (left < min_visible * np.asarray(areas)).any():
                continue
            top[mask] = len(classes)
            classes.append(thing)
            areas.append(inside)
            visible = list(left) + [inside]
            break
    return top, classes


def _render_sample(rng, h, w, num_things, num_clutter, size_range,
                   clutter_size_range, min_visible):
    """Draw one image and its segments.

    Returns:
        tuple[np.ndarray, np.ndarray, list[int]]: RGB uint8 image (H, W, 3),
        segment index per pixel int64 (H, W), and the category id of each
        segment index (some segments may end up empty).
    """
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    stuff = _stuff_layout(rng, h, w)
    img = np.zeros((h, w, 3), np.float32)
    present = np.bincount(stuff.ravel(), minlength=len(STUFF_CLASSES))
    for s in np.flatnonzero(present):
        img[stuff == s] = _stuff_texture(rng, int(s), yy, xx)[stuff == s]
    sizes = [size_range] * num_things + [clutter_size_range] * num_clutter
    top, things = _place_things(rng, h, w, sizes, min_visible)
    n_stuff = len(STUFF_CLASSES)
    seg = np.where(top >= 0, top + n_stuff, stuff)
    cat_ids = [len(THING_CLASSES) + 1 + s for s in range(n_stuff)]
    cat_ids += [t + 1 for t in things]
    for k in range(len(things)):
        vis = top == k
        ys, xs = np.nonzero(vis)
        cy, cx, ext = ys.mean(), xs.mean(), max(np.ptp(ys), np.ptp(xs), 1)
        theta = rng.uniform(0, 2 * np.pi)
        ramp = ((xx[vis] - cx) * np.cos(theta) +
                (yy[vis] - cy) * np.sin(theta)) / ext
        colour = rng.uniform(0, 255, 3)
        img[vis] = colour * (1 + 0.3 * ramp[:, None]) + 40 * ramp[:, None]
    img += 3 * rng.standard_normal(img.shape, dtype=np.float32)
    return np.clip(img, 0, 255).round().astype(np.uint8), seg, cat_ids


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
        img, seg, cat_ids = _render_sample(
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

"""Drawing of one toy panoptic sample: textured stuff bands and occluding,
randomly coloured shapes (see :mod:`.generator` for the data set)."""
import cv2
import numpy as np

from .metainfo import metainfo

THING_CLASSES = metainfo['thing_classes']
STUFF_CLASSES = metainfo['stuff_classes']
# Base colours of the stuff textures before the random tint (RGB).
_STUFF_BASE = np.array([[135, 185, 235], [125, 95, 60], [40, 95, 150]],
                       np.float32)


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


def render_sample(rng, h, w, num_things, num_clutter, size_range,
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

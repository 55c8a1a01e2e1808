"""Loading transforms that turn bad files into clear messages.

mmdet's ``LoadPanopticAnnotations`` decodes the panoptic PNG with
``flag='color'``, which silently turns a grayscale, RGBA or 16-bit PNG into
wrong ids and never compares the PNG's size with the image's. The subclass
here keeps mmdet's outputs and adds:

* a PNG that does not decode raises
  :class:`PanopticSegFormerCorruptFileError` naming it;
  ``PanopticSegFormerCocoPanopticDataset`` skips the sample in training
  (one warning per file) and re-raises in testing. Images are loaded by
  mmcv's own ``LoadImageFromFile``; when it fails, the data set looks for
  the undecodable file with :func:`find_corrupt_file`;
* a panoptic PNG must be 8-bit RGB and as large as its image (else
  :class:`PanopticSegFormerSizeMismatchError`, a ``ValueError`` naming
  both files; the data set skips such a training sample with one warning
  and raises in testing);
* ``segments_info`` ids absent from the PNG are dropped (with their boxes)
  and PNG ids absent from ``segments_info`` are void; both are counted and
  named in one warning per PNG.
"""
import logging
from collections import Counter
from typing import Hashable, List, Optional

import mmcv
import numpy as np
from mmdet.datasets.transforms import LoadPanopticAnnotations
from mmdet.registry import TRANSFORMS
from mmdet.structures.mask import BitmapMasks
from mmengine import fileio
from mmengine.logging import print_log

# (kind, path) pairs already warned about in this process.
_WARNED = set()


class PanopticSegFormerCorruptFileError(OSError):
    """An image or panoptic PNG that exists but does not decode.

    Args:
        path (str): The file.
        reason (str): What the decoder said.
    """

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        super().__init__(
            f'cannot decode {path}: {reason}. The file is truncated or '
            f'corrupt: replace it, or remove its image from the annotation '
            f'file')


class PanopticSegFormerSizeMismatchError(ValueError):
    """A panoptic PNG whose size is not its image's.

    Args:
        seg_map_path (str): The PNG.
        img_path (str, optional): Its image.
        message (str): The full message, with the fix.
    """

    def __init__(self, seg_map_path: str, img_path: Optional[str],
                 message: str) -> None:
        self.path = seg_map_path
        self.img_path = img_path
        super().__init__(message)


def warn_once(key: Hashable, message: str) -> bool:
    """Log ``message`` as a warning unless ``key`` was logged before in this
    process. Returns whether it was logged.

    Data loader workers are separate processes: with ``persistent_workers``
    each worker warns at most once per key for the whole run.
    """
    if key in _WARNED:
        return False
    _WARNED.add(key)
    print_log(message, logger='current', level=logging.WARNING)
    return True


def _decode(content: bytes, path: str, flag: str,
            backend: Optional[str]) -> np.ndarray:
    """``mmcv.imfrombytes`` that raises, naming ``path``, where it would
    return ``None`` (cv2) or raise an anonymous error (pillow)."""
    try:
        img = mmcv.imfrombytes(content, flag=flag, backend=backend)
    except Exception as err:  # cv2.error, PIL's OSError, ...
        raise PanopticSegFormerCorruptFileError(
            path, f'{type(err).__name__}: {err}') from err
    if img is None:
        raise PanopticSegFormerCorruptFileError(
            path, 'the decoder returned no image')
    return img


def decode_panoptic_png(content: bytes, path: str,
                        backend: Optional[str] = 'cv2') -> np.ndarray:
    """Segment ids of a COCO panoptic PNG.

    Args:
        content (bytes): The PNG file's bytes.
        path (str): Its path, for messages.
        backend (str, optional): mmcv decoding backend. Defaults to 'cv2'.

    Returns:
        np.ndarray: int64 ids of shape (H, W), id = R + 256 G + 256^2 B.

    Raises:
        PanopticSegFormerCorruptFileError: The bytes do not decode.
        ValueError: The PNG is not 8-bit RGB (grayscale, alpha, 16-bit).
    """
    png = _decode(content, path, 'unchanged', backend)
    channels = 1 if png.ndim == 2 else png.shape[2]
    if channels != 3 or png.dtype != np.uint8:
        kind = {1: 'grayscale', 2: 'grayscale with alpha',
                4: 'RGBA'}.get(channels, f'{channels}-channel')
        bits = 8 * png.dtype.itemsize
        raise ValueError(
            f'panoptic PNG {path} is {bits}-bit {kind} (array {png.dtype} '
            f'of shape {png.shape}); a panoptic PNG must be 8-bit RGB with '
            f'segment id = R + 256 * G + 256**2 * B. Convert it offline '
            f'(e.g. panopticapi.utils.id2rgb on the id map, saved as RGB '
            f'without alpha)')
    # 'unchanged' gives BGR with both the cv2 and the pillow backend
    rgb = png[..., ::-1].astype(np.int64)
    return rgb[..., 0] + 256 * rgb[..., 1] + 256**2 * rgb[..., 2]


def segment_ids(ids: np.ndarray) -> np.ndarray:
    """Sorted distinct values of a panoptic id map, as ``np.unique``.

    A segment covers runs of neighbouring pixels, so only the first pixel
    of each run (in row-major order) is a candidate: ``np.unique`` sorts
    those few instead of every pixel (0.95 ms -> about 0.1 ms for a 128 px
    map, more for COCO's 640 x 480).

    Args:
        ids (np.ndarray): (H, W) integer ids.

    Returns:
        np.ndarray: (K, ) the distinct ids in ascending order.
    """
    flat = ids.ravel()
    if flat.size == 0:
        return np.unique(flat)
    starts = np.empty(flat.shape, dtype=bool)
    starts[0] = True
    np.not_equal(flat[1:], flat[:-1], out=starts[1:])
    return np.unique(flat[starts])


def find_corrupt_file(paths, backend_args: Optional[dict] = None
                      ) -> Optional[PanopticSegFormerCorruptFileError]:
    """The error of the first existing file of ``paths`` that does not
    decode, or None when every one that exists decodes.

    Called only after a sample failed to load, to tell a corrupt file from
    any other error: mmcv's ``LoadImageFromFile`` reports an undecodable
    file with a bare ``AssertionError`` (cv2) or the decoder's own error
    (pillow).
    """
    for path in paths:
        if not path or not fileio.exists(path, backend_args=backend_args):
            continue
        try:
            _decode(fileio.get(path, backend_args=backend_args), path,
                    'unchanged', None)
        except PanopticSegFormerCorruptFileError as err:
            return err
    return None


@TRANSFORMS.register_module()
class PanopticSegFormerLoadPanopticAnnotations(LoadPanopticAnnotations):
    """``LoadPanopticAnnotations`` that validates the panoptic PNG.

    Outputs are mmdet's (``gt_bboxes``, ``gt_bboxes_labels``,
    ``gt_ignore_flags``, ``gt_masks``, ``gt_seg_map`` with 255 for void).
    The ``k``-th thing of ``segments_info`` is the ``k``-th entry of
    ``instances``, as mmdet's ``CocoPanopticDataset`` builds them; a thing
    dropped for missing pixels loses its box too. Ids listed in
    ``ignored_ids`` (segments the dataset made void, e.g. of classes outside
    ``metainfo``) are void without a warning.

    Must follow an image loader (the PNG is checked against ``ori_shape``).

    Args:
        box_from_mask (bool): Take every thing box from its mask (the tight
            box of its pixels) instead of the annotation file; for files
            with wrong boxes, e.g. those of mmdet's ``ade20k2coco.py``.
            Instances with ``bbox_from_mask`` get it either way. Defaults
            to False.
        *args, **kwargs: Arguments of mmdet's ``LoadPanopticAnnotations``.

    Attributes:
        counts (Counter): In this process, ``dropped_segments`` (listed in
            ``segments_info``, absent from the PNG) and ``unknown_ids`` (in
            the PNG, absent from ``segments_info``).
    """

    def __init__(self, *args, box_from_mask: bool = False,
                 **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.box_from_mask = box_from_mask
        self.counts = Counter()

    def transform(self, results: dict) -> dict:
        ids = None
        if (self.with_mask or self.with_seg) and \
                results.get('seg_map_path') is not None:
            ids = self._load_ids(results)
            self._match_segments(results, ids)
        if self.with_bbox:
            self._load_bboxes(results)
        if self.with_label:
            self._load_labels(results)
        if ids is not None:
            self._masks_and_semantic_seg(results, ids)
            if self.with_bbox:
                self._boxes_from_masks(results, ids)
        return results

    def _boxes_from_masks(self, results: dict, ids: np.ndarray) -> None:
        """Replace the boxes of instances with ``bbox_from_mask`` (all with
        ``box_from_mask``) by the tight boxes of their segments."""
        things = [s for s in results['segments_info'] if s.get('is_thing')]
        rows = [k for k, instance in enumerate(results['instances'])
                if self.box_from_mask or instance.get('bbox_from_mask')]
        if not rows:
            return
        boxes = results['gt_bboxes']
        boxes = getattr(boxes, 'tensor', boxes)  # box_type=None: an array
        for k in rows:
            ys, xs = np.nonzero(ids == things[k]['id'])
            box = [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
            boxes[k] = boxes.new_tensor(box) if hasattr(boxes, 'new_tensor') \
                else box

    def _load_ids(self, results: dict) -> np.ndarray:
        """Decode and check the panoptic PNG; ids (H, W) int64."""
        path = results['seg_map_path']
        content = fileio.get(path, backend_args=self.backend_args)
        ids = decode_panoptic_png(content, path, self.imdecode_backend)
        if 'ori_shape' in results:
            expected = tuple(results['ori_shape'])
            source = f'its image {results.get("img_path")}'
        else:
            expected = (results['height'], results['width'])
            source = 'the annotation file (height, width)'
        if ids.shape != expected:
            hint = ''
            if ids.shape == expected[::-1]:
                hint = (' The sizes are transposed: the image most likely '
                        'carries an EXIF orientation tag, which the image '
                        'loader applies (color_type="color").')
            raise PanopticSegFormerSizeMismatchError(
                path, results.get('img_path'),
                f'panoptic PNG {path} is {ids.shape[0]}x{ids.shape[1]} '
                f'(HxW) but {source} is {expected[0]}x{expected[1]}.{hint} '
                f'Re-export the image without EXIF orientation or rotate the '
                f'PNG to match; if the annotations were drawn on the stored '
                f'pixels, load images with color_type='
                f'"color_ignore_orientation"')
        return ids

    def _match_segments(self, results: dict, ids: np.ndarray) -> None:
        """Drop segments (and their instances) absent from the PNG and
        report PNG ids absent from ``segments_info``."""
        segments = results.get('segments_info', [])
        instances = results.get('instances', [])
        num_things = sum(bool(s.get('is_thing')) for s in segments)
        if num_things != len(instances):
            raise ValueError(
                f'{results.get("img_path")}: {num_things} thing segments but '
                f'{len(instances)} instances; the dataset must list one '
                f'instance per non-crowd thing segment, in order '
                f'(CocoPanopticDataset does)')
        present = set(segment_ids(ids).tolist())
        kept_segments: List[dict] = []
        kept_instances: List[dict] = []
        missing: List[int] = []
        things = iter(instances)
        for segment in segments:
            instance = next(things) if segment.get('is_thing') else None
            if segment['id'] not in present:
                missing.append(segment['id'])
                continue
            kept_segments.append(segment)
            if instance is not None:
                kept_instances.append(instance)
        known = {s['id'] for s in segments}
        known.update(results.get('ignored_ids', ()))
        unknown = sorted(present - known - {0})
        if missing or unknown:
            self.counts['dropped_segments'] += len(missing)
            self.counts['unknown_ids'] += len(unknown)
            warn_once(('segments', results['seg_map_path']), (
                f'panoptic PNG {results["seg_map_path"]} and segments_info '
                f'disagree: {len(missing)} segment(s) listed but absent from '
                f'the PNG, dropped: {_head(missing)}; {len(unknown)} PNG '
                f'id(s) not in segments_info, treated as void: '
                f'{_head(unknown)}'))
        results['segments_info'] = kept_segments
        results['instances'] = kept_instances

    def _masks_and_semantic_seg(self, results: dict,
                                ids: np.ndarray) -> None:
        """``gt_masks`` (things) and ``gt_seg_map`` (labels, 255 void)."""
        seg = np.full(ids.shape, 255, dtype=np.int32)
        masks = []
        for segment in results['segments_info']:
            mask = ids == segment['id']
            seg[mask] = segment['category']
            if segment.get('is_thing'):
                masks.append(mask.astype(np.uint8))
        if self.with_mask:
            h, w = ids.shape
            results['gt_masks'] = BitmapMasks(masks, h, w)
        if self.with_seg:
            results['gt_seg_map'] = seg


def _head(values: List[int], limit: int = 8) -> str:
    """``[a, b, ...]`` with at most ``limit`` values."""
    more = f' and {len(values) - limit} more' if len(values) > limit else ''
    return f'{list(values[:limit])}{more}'

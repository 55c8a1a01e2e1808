"""Check every image / panoptic PNG pair of a data set before training.

A panoptic PNG of another size than its image (most often a JPEG whose EXIF
orientation tag the image loader applies) stops a run at that sample, after
whatever time it took to get there. :func:`check_panoptic_files` finds all
such pairs at once from the file headers only (no pixel is decoded), in
parallel worker processes, so that a COCO-size set takes seconds:

* the image's size as mmcv's ``LoadImageFromFile`` will see it: its EXIF
  orientation (5-8 transpose) is applied exactly where mmcv applies it
  (``color_type`` 'color' or 'grayscale'; with the cv2 backend for JPEG
  and PNG files, with the pillow backend for every format);
* the PNG's size, bit depth and colour type from its ``IHDR`` chunk (the
  loader needs 8-bit RGB);
* missing files and files whose header does not parse.

:class:`~panseg_plugin.engine.hooks.PanopticDataCheckHook` runs it before
the first iteration; it can also be called on its own.
"""
import io
import os
import os.path as osp
import struct
from concurrent.futures import ProcessPoolExecutor
from typing import Iterable, List, NamedTuple, Optional, Sequence, Tuple

from mmengine import fileio
from PIL import Image, UnidentifiedImageError

# mmcv's color_type values that apply the EXIF orientation
ORIENTED_COLOR_TYPES = ('color', 'grayscale')
# formats whose EXIF orientation OpenCV applies (mmcv's default backend)
CV2_ORIENTED_FORMATS = ('JPEG', 'MPO', 'PNG')
PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'
PNG_COLOR_TYPES = {0: 'grayscale', 2: 'RGB', 3: 'palette',
                   4: 'grayscale with alpha', 6: 'RGBA'}
EXIF_ORIENTATION = 0x0112


class FileProblem(NamedTuple):
    """A bad image / PNG pair.

    Attributes:
        img_path (str): The image.
        seg_map_path (str): Its panoptic PNG.
        kind (str): 'missing', 'unreadable', 'png_format' or 'size'.
        message (str): What is wrong and how to fix it.
    """
    img_path: str
    seg_map_path: str
    kind: str
    message: str


def _open_header(path: str, backend_args: Optional[dict]):
    """A file object of ``path``: the local file (only its header is read)
    or, for other backends, its bytes."""
    if backend_args is None and '://' not in path:
        return open(path, 'rb')
    return io.BytesIO(fileio.get(path, backend_args=backend_args))


def _exists(path: str, backend_args: Optional[dict]) -> bool:
    if backend_args is None and '://' not in path:
        return osp.isfile(path)
    return fileio.exists(path, backend_args=backend_args)


def image_size_as_loaded(path: str, color_type: str = 'color',
                         backend: str = 'cv2',
                         backend_args: Optional[dict] = None
                         ) -> Tuple[int, int, int]:
    """(height, width, EXIF orientation) of an image as mmcv's
    ``LoadImageFromFile`` will decode it, from its header.

    Args:
        path (str): The image.
        color_type (str): The loader's ``color_type``.
        backend (str): The loader's ``imdecode_backend``.
        backend_args (dict, optional): mmengine file backend arguments.

    Returns:
        tuple[int, int, int]: Height and width after the orientation the
        loader applies, and the file's orientation tag (1 when none).
    """
    with _open_header(path, backend_args) as f:
        with Image.open(f) as img:
            width, height = img.size
            fmt = img.format
            orientation = 1
            try:
                orientation = int(img.getexif().get(EXIF_ORIENTATION, 1))
            except Exception:  # a broken EXIF block: mmcv ignores it too
                pass
    applied = color_type in ORIENTED_COLOR_TYPES and (
        backend == 'pillow' or fmt in CV2_ORIENTED_FORMATS)
    if applied and orientation in (5, 6, 7, 8):
        width, height = height, width
    return height, width, orientation


def png_header(path: str, backend_args: Optional[dict] = None
               ) -> Tuple[int, int, int, int, bool]:
    """(height, width, bit depth, colour type, transparency) of a PNG from
    its ``IHDR`` chunk and, for a palette PNG, the chunk headers before the
    image data (a ``tRNS`` chunk makes the decoder return 4 channels).

    Raises:
        ValueError: The file does not start like a PNG.
    """
    with _open_header(path, backend_args) as f:
        head = f.read(33)
        if len(head) < 29 or head[:8] != PNG_SIGNATURE or \
                head[12:16] != b'IHDR':
            raise ValueError(
                'not a PNG file (no PNG signature and IHDR chunk)')
        width, height, depth, color = struct.unpack('>IIBB', head[16:26])
        transparency = False
        if color == 3:
            f.seek(33)
            while True:
                chunk = f.read(8)
                if len(chunk) < 8 or chunk[4:] in (b'IDAT', b'IEND'):
                    break
                if chunk[4:] == b'tRNS':
                    transparency = True
                    break
                f.seek(struct.unpack('>I', chunk[:4])[0] + 4, io.SEEK_CUR)
    return height, width, depth, color, transparency


def check_pair(img_path: str, seg_map_path: str, color_type: str = 'color',
               backend: str = 'cv2', backend_args: Optional[dict] = None
               ) -> Optional[FileProblem]:
    """The problem of one image / panoptic PNG pair, or None.

    Arguments as :func:`image_size_as_loaded`.
    """
    for path in (img_path, seg_map_path):
        if not _exists(path, backend_args):
            return FileProblem(
                img_path, seg_map_path, 'missing',
                f'{path} does not exist: add it, or remove its image from '
                f'the annotation file')
    try:
        img_h, img_w, orientation = image_size_as_loaded(
            img_path, color_type, backend, backend_args)
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as err:
        return FileProblem(
            img_path, seg_map_path, 'unreadable',
            f'{img_path} is not a readable image ({type(err).__name__}: '
            f'{err}): replace it, or remove it from the annotation file')
    try:
        png_h, png_w, depth, color, transparency = png_header(
            seg_map_path, backend_args)
    except (OSError, ValueError, struct.error) as err:
        return FileProblem(
            img_path, seg_map_path, 'unreadable',
            f'panoptic PNG {seg_map_path} is unreadable ({err}): re-export '
            f'it as an 8-bit RGB PNG')
    # what the loader accepts: 8-bit RGB, or a palette without
    # transparency (decoded to 8-bit RGB)
    if not ((color == 2 and depth == 8) or (color == 3 and not transparency)):
        kind = PNG_COLOR_TYPES.get(color, f'colour type {color}')
        if transparency:
            kind += ' with transparency'
        depth = 8 if color == 3 else depth
        return FileProblem(
            img_path, seg_map_path, 'png_format',
            f'panoptic PNG {seg_map_path} is {depth}-bit {kind}; it must be '
            f'8-bit RGB with segment id = R + 256 * G + 256**2 * B: convert '
            f'it (e.g. panopticapi.utils.id2rgb on the id map, saved as RGB '
            f'without alpha)')
    if (png_h, png_w) == (img_h, img_w):
        return None
    if (png_h, png_w) == (img_w, img_h) and orientation in (5, 6, 7, 8):
        fix = (f'the image carries EXIF orientation {orientation}, which '
               f'LoadImageFromFile applies (color_type="{color_type}"): '
               f're-export the image with its pixels rotated and no '
               f'orientation tag, or rotate the PNG to match; if the '
               f'annotations were drawn on the stored pixels, load images '
               f'with color_type="color_ignore_orientation"')
    else:
        fix = ('the PNG was made for another image or at another size: '
               're-export it at the image\'s size, or correct the '
               'annotation record\'s file_name')
    return FileProblem(
        img_path, seg_map_path, 'size',
        f'panoptic PNG {seg_map_path} is {png_h}x{png_w} (HxW) but its image '
        f'{img_path} loads as {img_h}x{img_w}: {fix}')


def _check_chunk(args) -> List[FileProblem]:
    pairs, color_type, backend, backend_args = args
    problems = []
    for img_path, seg_map_path in pairs:
        problem = check_pair(img_path, seg_map_path, color_type, backend,
                             backend_args)
        if problem is not None:
            problems.append(problem)
    return problems


def check_panoptic_files(pairs: Sequence[Tuple[str, str]],
                         color_type: str = 'color',
                         backend: str = 'cv2',
                         backend_args: Optional[dict] = None,
                         num_workers: Optional[int] = None,
                         chunk_size: int = 500) -> List[FileProblem]:
    """Every bad pair of ``pairs``, in their order.

    Args:
        pairs (Sequence[tuple[str, str]]): (image, panoptic PNG) paths.
        color_type (str): ``color_type`` of the pipeline's image loader.
            Defaults to 'color' (mmcv's default).
        backend (str): Its ``imdecode_backend``. Defaults to 'cv2'.
        backend_args (dict, optional): mmengine file backend arguments;
            with a non-local backend every file is fetched whole.
        num_workers (int, optional): Worker processes; None uses up to 8
            of the CPUs; 0 or 1 checks in this process.
        chunk_size (int): Pairs per task. Defaults to 500.

    Returns:
        list[FileProblem]: One per bad pair.
    """
    pairs = list(pairs)
    if num_workers is None:
        num_workers = min(8, os.cpu_count() or 1)
    chunks = [(pairs[i:i + chunk_size], color_type, backend, backend_args)
              for i in range(0, len(pairs), chunk_size)]
    if num_workers <= 1 or len(chunks) <= 1:
        results: Iterable[List[FileProblem]] = map(_check_chunk, chunks)
        return [p for chunk in results for p in chunk]
    with ProcessPoolExecutor(min(num_workers, len(chunks))) as pool:
        return [p for chunk in pool.map(_check_chunk, chunks) for p in chunk]


def format_problems(problems: Sequence[FileProblem], where: str,
                    num_pairs: int, limit: Optional[int] = None) -> str:
    """One message listing the problems (the first ``limit``, or all),
    counted by kind."""
    counts = {}
    for problem in problems:
        counts[problem.kind] = counts.get(problem.kind, 0) + 1
    summary = ', '.join(f'{n} {kind}' for kind, n in sorted(counts.items()))
    shown = problems if limit is None else problems[:limit]
    lines = [f'{where}: {len(problems)} of {num_pairs} image / panoptic PNG '
             f'pairs would fail to load ({summary}):']
    lines += [f'  {problem.message}' for problem in shown]
    if len(shown) < len(problems):
        lines.append(f'  ... and {len(problems) - len(shown)} more')
    return '\n'.join(lines)


def leaf_datasets(dataset) -> list:
    """The data sets under mmengine's wrappers (Concat, Repeat,
    ClassBalanced)."""
    if hasattr(dataset, 'datasets'):
        return [d for sub in dataset.datasets for d in leaf_datasets(sub)]
    if hasattr(dataset, 'dataset') and not hasattr(dataset, 'data_list'):
        return leaf_datasets(dataset.dataset)
    return [dataset]


def image_loader_settings(dataset) -> Tuple[str, str]:
    """``color_type`` and ``imdecode_backend`` of the first mmcv
    ``LoadImageFromFile`` (or subclass) in the data set's pipeline; mmcv's
    defaults when there is none."""
    from mmcv.transforms import LoadImageFromFile
    for transform in getattr(getattr(dataset, 'pipeline', None),
                             'transforms', []):
        if isinstance(transform, LoadImageFromFile):
            return transform.color_type, transform.imdecode_backend
    return 'color', 'cv2'


def check_dataset_files(dataset, num_workers: Optional[int] = None
                        ) -> Tuple[List[FileProblem], int]:
    """:func:`check_panoptic_files` on every sample of ``dataset`` (and of
    the data sets a wrapper holds) that has a ``seg_map_path``.

    Returns:
        tuple[list[FileProblem], int]: The problems and the number of pairs
        checked.
    """
    problems, total = [], 0
    for leaf in leaf_datasets(dataset):
        if not hasattr(leaf, 'get_data_info'):
            continue  # not an mmengine data set: nothing to read
        if hasattr(leaf, 'full_init'):
            leaf.full_init()
        pairs = []
        for i in range(len(leaf)):
            info = leaf.get_data_info(i)
            if info.get('seg_map_path') and info.get('img_path'):
                pairs.append((info['img_path'], info['seg_map_path']))
        color_type, backend = image_loader_settings(leaf)
        problems += check_panoptic_files(
            pairs, color_type, backend,
            getattr(leaf, 'backend_args', None), num_workers)
        total += len(pairs)
    return problems, total

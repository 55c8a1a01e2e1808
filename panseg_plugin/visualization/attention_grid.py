"""Pure functions behind ``tools/analysis_tools/vis_attention.py`` (Fig. 5).

The mask decoder turns the multi-level, multi-head attention maps of its last
layer into masks (section 3.4). This module renders them as one picture:

    +--------+--------+-------+-------+-----+-------+-----+
    |        | mask   | L0 h0 | L0 h1 | ... | L1 h0 | ... |   <- header
    +--------+--------+-------+-------+-----+-------+-----+
    | label  | image  | heat  | heat  | ... | heat  | ... |   <- one row per
    | score  | + mask | map   | map   |     | map   |     |      segment
    +--------+--------+-------+-------+-----+-------+-----+

Columns are level-major (all heads of level 0, then of level 1, ...).

Normalisation (``normalize_attention``). The head feeds the attention
*logits* of every level and head linearly into its 1x1 mask convolution, so
the default ``'logits'`` shows each (level, head) logit map min-max
normalised to [0, 1]: exactly the ingredient the mask is made of, up to an
affine change. ``'softmax'`` shows the softmax over the tokens of that level,
divided by its maximum (``exp(a - max a)``): where a head concentrates its
attention within the level, with peaks emphasised. Both are computed over the
tokens that cover the image only (padding removed by ``crop_to_image``).
Each cell is drawn by mmengine's ``Visualizer.draw_featmap``: the map,
resized bilinearly to the cell, stretched from its minimum to its maximum
over the JET colormap and blended over the dimmed image. For ``'logits'``
that stretch is the normalisation itself; for ``'softmax'`` the peak stays
the top of the colormap and the floor moves to the map's smallest value.

Everything here works on numpy arrays, is deterministic and has no model or
config dependency, so it can be tested with hand-made inputs. Images are RGB
``uint8`` (H, W, 3).
"""
import math
from typing import List, NamedTuple, Sequence, Tuple

import cv2
import numpy as np
import torch
from mmengine.visualization import Visualizer

NORM_MODES = ('logits', 'softmax')

_FONT = cv2.FONT_HERSHEY_SIMPLEX
_BACKGROUND = 255
_TEXT_COLOR = (0, 0, 0)
_MASK_COLOR = np.array([255, 40, 40], dtype=np.float32)


class GridLayout(NamedTuple):
    """Pixel geometry of an attention grid.

    The picture is ``label_w`` pixels of row labels followed by ``num_cols``
    cells, and ``header_h`` pixels of column labels above ``num_rows`` rows;
    every cell is preceded, left and top, by ``gap`` background pixels.

    Attributes:
        num_rows (int): Segments shown.
        num_cols (int): ``1 + num_levels * num_heads``.
        cell_h (int): Height of one cell.
        cell_w (int): Width of one cell.
        label_w (int): Width of the row-label column.
        header_h (int): Height of the column-label row.
        gap (int): Background pixels between cells.
    """
    num_rows: int
    num_cols: int
    cell_h: int
    cell_w: int
    label_w: int
    header_h: int
    gap: int

    @property
    def height(self) -> int:
        """``header_h + num_rows * (gap + cell_h)``."""
        return self.header_h + self.num_rows * (self.gap + self.cell_h)

    @property
    def width(self) -> int:
        """``label_w + num_cols * (gap + cell_w)``."""
        return self.label_w + self.num_cols * (self.gap + self.cell_w)

    def cell_origin(self, row: int, col: int) -> Tuple[int, int]:
        """(y, x) of the top-left pixel of cell (``row``, ``col``)."""
        if not (0 <= row < self.num_rows and 0 <= col < self.num_cols):
            raise IndexError(f'cell ({row}, {col}) outside a '
                             f'{self.num_rows} x {self.num_cols} grid')
        return (self.header_h + row * (self.gap + self.cell_h) + self.gap,
                self.label_w + col * (self.gap + self.cell_w) + self.gap)


def cell_shape(image_hw: Sequence[int], cell_size: int) -> Tuple[int, int]:
    """(height, width) of a cell showing an image of ``image_hw``.

    The longer side becomes ``cell_size`` and the shorter one keeps the
    aspect ratio, ``max(1, round(cell_size * short / long))``.
    """
    h, w = int(image_hw[0]), int(image_hw[1])
    if h <= 0 or w <= 0 or cell_size <= 0:
        raise ValueError(f'need positive sizes, got image {image_hw} and '
                         f'cell_size {cell_size}')
    if h >= w:
        return cell_size, max(1, round(cell_size * w / h))
    return max(1, round(cell_size * h / w)), cell_size


def grid_layout(num_rows: int,
                num_levels: int,
                num_heads: int,
                cell_hw: Sequence[int],
                label_w: int = 140,
                header_h: int = 22,
                gap: int = 2) -> GridLayout:
    """Layout of a grid of ``num_rows`` segments, one mask column and
    ``num_levels * num_heads`` attention columns of ``cell_hw`` cells."""
    if num_rows < 0 or num_levels < 1 or num_heads < 1:
        raise ValueError(f'invalid grid: {num_rows} rows, {num_levels} '
                         f'levels, {num_heads} heads')
    return GridLayout(num_rows, 1 + num_levels * num_heads, int(cell_hw[0]),
                      int(cell_hw[1]), label_w, header_h, gap)


def column_labels(num_levels: int, num_heads: int) -> List[str]:
    """``['mask', 'L0 h0', 'L0 h1', ..., 'L{K-1} h{h-1}']``, level-major."""
    return ['mask'] + [f'L{level} h{head}' for level in range(num_levels)
                       for head in range(num_heads)]


def crop_to_image(level_map: np.ndarray, pad_hw: Sequence[int],
                  img_hw: Sequence[int]) -> np.ndarray:
    """Keep the tokens of a level that cover the image, not its padding.

    A level of ``H_i x W_i`` tokens covers the padded input ``pad_hw``; the
    image occupies its top-left ``img_hw``. Token row ``y`` is kept when
    nearest-neighbour downsampling of the padding mask (as mmdet's valid
    ratios) marks it valid: ``ceil(H_i * img_h / pad_h)`` rows, likewise
    columns.

    Args:
        level_map (np.ndarray): (..., H_i, W_i).
        pad_hw (Sequence[int]): Padded batch input (height, width).
        img_hw (Sequence[int]): Image (height, width) inside it.

    Returns:
        np.ndarray: (..., h_i, w_i) view of the valid tokens.
    """
    height, width = level_map.shape[-2:]
    valid_h = min(height, math.ceil(height * img_hw[0] / pad_hw[0]))
    valid_w = min(width, math.ceil(width * img_hw[1] / pad_hw[1]))
    return level_map[..., :max(valid_h, 1), :max(valid_w, 1)]


def normalize_attention(level_map: np.ndarray,
                        mode: str = 'logits') -> np.ndarray:
    """Attention logits of one level -> [0, 1] maps, each map on its own.

    Args:
        level_map (np.ndarray): Logits (..., H_i, W_i); each trailing
            (H_i, W_i) map (one query, one head) is normalised separately.
        mode (str): ``'logits'``: min-max normalised logits (a constant map
            becomes 0). ``'softmax'``: softmax over the map's tokens divided
            by its maximum, i.e. ``exp(a - max a)``, so the peak is 1.

    Returns:
        np.ndarray: float32 of the same shape, values in [0, 1].
    """
    if mode not in NORM_MODES:
        raise ValueError(f'mode must be one of {NORM_MODES}, got {mode!r}')
    maps = np.asarray(level_map, dtype=np.float32)
    hi = maps.max(axis=(-2, -1), keepdims=True)
    if mode == 'softmax':
        return np.exp(maps - hi)
    lo = maps.min(axis=(-2, -1), keepdims=True)
    span = hi - lo
    return np.where(span > 0, (maps - lo) / np.where(span > 0, span, 1), 0.)


def overlay_mask(image: np.ndarray, mask: np.ndarray,
                 alpha: float = 0.5) -> np.ndarray:
    """Tint the pixels of a binary ``mask`` (H, W) in ``image`` (H, W, 3)."""
    out = image.astype(np.float32)
    out[mask] = (1 - alpha) * out[mask] + alpha * _MASK_COLOR
    return out.round().astype(np.uint8)


def _fit_text(text: str, max_w: int, scale: float) -> str:
    """Truncate ``text`` until it is at most ``max_w`` pixels wide."""
    while text and cv2.getTextSize(text, _FONT, scale, 1)[0][0] > max_w:
        text = text[:-1]
    return text


def _put_lines(canvas: np.ndarray, lines: Sequence[str], y: int, x: int,
               max_w: int, scale: float) -> None:
    """Draw ``lines`` top-down from (y, x) in place."""
    step = cv2.getTextSize('Ag', _FONT, scale, 1)[0][1] + 6
    for i, line in enumerate(lines):
        cv2.putText(canvas, _fit_text(line, max_w, scale),
                    (x, y + (i + 1) * step), _FONT, scale, _TEXT_COLOR, 1,
                    cv2.LINE_AA)


def render_attention_grid(image: np.ndarray,
                          masks: np.ndarray,
                          level_maps: Sequence[np.ndarray],
                          row_labels: Sequence[str],
                          cell_size: int = 200,
                          label_w: int = 140,
                          header_h: int = 22,
                          gap: int = 2,
                          heat_alpha: float = 0.6,
                          font_scale: float = 0.4) -> np.ndarray:
    """The Fig. 5 picture: per segment, its mask and attention heat maps.

    Args:
        image (np.ndarray): RGB uint8 (H, W, 3).
        masks (np.ndarray): Binary masks (R, H, W) of the R segments.
        level_maps (Sequence[np.ndarray]): K arrays, the i-th (R, h, h_i, w_i)
            with values in [0, 1] (see :func:`normalize_attention`) covering
            the image (see :func:`crop_to_image`); resized bilinearly to the
            cell.
        row_labels (Sequence[str]): R labels, e.g. ``'person\\n0.87'``;
            ``'\\n'`` separates lines.
        cell_size (int): Longer side of a cell (see :func:`cell_shape`).
        label_w, header_h, gap (int): See :class:`GridLayout`.
        heat_alpha (float): Weight of the heat map over the dimmed image.
        font_scale (float): OpenCV font scale of the labels.

    Returns:
        np.ndarray: RGB uint8 (layout.height, layout.width, 3), layout being
        ``grid_layout(R, K, h, cell_shape(image.shape[:2], cell_size), ...)``.
    """
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f'image must be (H, W, 3), got {image.shape}')
    num_rows = masks.shape[0]
    if masks.shape[1:] != image.shape[:2]:
        raise ValueError(f'masks {masks.shape} do not match image '
                         f'{image.shape[:2]}')
    if len(row_labels) != num_rows:
        raise ValueError(f'{len(row_labels)} row labels for {num_rows} rows')
    if not level_maps:
        raise ValueError('need at least one level of attention maps')
    num_heads = level_maps[0].shape[1]
    for i, maps in enumerate(level_maps):
        if maps.ndim != 4 or maps.shape[:2] != (num_rows, num_heads):
            raise ValueError(f'level {i} maps must be ({num_rows}, '
                             f'{num_heads}, h_i, w_i), got {maps.shape}')

    cell_h, cell_w = cell_shape(image.shape[:2], cell_size)
    layout = grid_layout(num_rows, len(level_maps), num_heads,
                         (cell_h, cell_w), label_w, header_h, gap)
    canvas = np.full((layout.height, layout.width, 3), _BACKGROUND,
                     dtype=np.uint8)
    small = cv2.resize(image, (cell_w, cell_h), interpolation=cv2.INTER_AREA)
    dimmed = cv2.cvtColor(cv2.cvtColor(small, cv2.COLOR_RGB2GRAY),
                          cv2.COLOR_GRAY2RGB)

    for col, text in enumerate(column_labels(len(level_maps), num_heads)):
        x = layout.label_w + col * (gap + cell_w) + gap
        _put_lines(canvas, [text], 0, x, cell_w, font_scale)
    for row in range(num_rows):
        y, x = layout.cell_origin(row, 0)
        _put_lines(canvas, row_labels[row].split('\n'), y, 4, label_w - 8,
                   font_scale)
        mask = cv2.resize(masks[row].astype(np.uint8), (cell_w, cell_h),
                          interpolation=cv2.INTER_NEAREST).astype(bool)
        canvas[y:y + cell_h, x:x + cell_w] = overlay_mask(small, mask)
        col = 1
        for maps in level_maps:
            for head in range(num_heads):
                y, x = layout.cell_origin(row, col)
                values = cv2.resize(
                    np.ascontiguousarray(maps[row, head], dtype=np.float32),
                    (cell_w, cell_h), interpolation=cv2.INTER_LINEAR)
                canvas[y:y + cell_h, x:x + cell_w] = Visualizer.draw_featmap(
                    torch.from_numpy(values)[None], dimmed,
                    channel_reduction=None, topk=0, alpha=heat_alpha)
                col += 1
    return canvas

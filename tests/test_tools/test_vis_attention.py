"""tools/analysis_tools/vis_attention.py and its pure helpers."""
import copy
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from mmdet.registry import MODELS
from mmengine.config import Config

from panseg_plugin.testing import load_script, tiny_panoptic_segformer_cfg
from panseg_plugin.visualization.attention_grid import (GridLayout, cell_shape,
                                                        column_labels,
                                                        crop_to_image,
                                                        grid_layout,
                                                        normalize_attention,
                                                        render_attention_grid)

TOOL = Path(__file__).parents[2] / 'tools' / 'analysis_tools' / \
    'vis_attention.py'


@pytest.fixture(autouse=True)
def one_thread():
    """2 shared cores: OpenMP threads spin-waiting on a loaded machine make
    tiny models 10-100x slower; one thread is fast and deterministic."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _load_tool():
    return load_script(TOOL, 'vis_attention')


@pytest.mark.parametrize('image_hw, size, expected', [
    ((60, 76), 48, (38, 48)),    # 48 * 60 / 76 = 37.9
    ((76, 60), 48, (48, 38)),
    ((50, 50), 32, (32, 32)),
    ((1, 500), 10, (1, 10)),     # never below one pixel
])
def test_cell_shape_keeps_aspect_ratio(image_hw, size, expected):
    assert cell_shape(image_hw, size) == expected


def test_grid_layout_arithmetic_and_cell_origins():
    layout = grid_layout(3, num_levels=2, num_heads=4, cell_hw=(30, 40),
                         label_w=100, header_h=20, gap=2)
    assert layout == GridLayout(3, 9, 30, 40, 100, 20, 2)
    assert layout.height == 20 + 3 * (2 + 30)
    assert layout.width == 100 + 9 * (2 + 40)
    assert layout.cell_origin(0, 0) == (22, 102)
    assert layout.cell_origin(2, 8) == (20 + 2 * 32 + 2, 100 + 8 * 42 + 2)
    # the last cell ends exactly at the picture's border
    y, x = layout.cell_origin(2, 8)
    assert (y + 30, x + 40) == (layout.height, layout.width)
    with pytest.raises(IndexError):
        layout.cell_origin(3, 0)


def test_column_labels_are_level_major():
    assert column_labels(2, 2) == ['mask', 'L0 h0', 'L0 h1', 'L1 h0', 'L1 h1']


def test_crop_to_image_keeps_tokens_covering_the_image():
    level = np.arange(4 * 6).reshape(1, 1, 4, 6)
    # image 60 x 70 inside a 64 x 96 padded input: ceil(4 * 60 / 64) = 4,
    # ceil(6 * 70 / 96) = 5
    assert crop_to_image(level, (64, 96), (60, 70)).shape == (1, 1, 4, 5)
    assert crop_to_image(level, (64, 96), (64, 96)).shape == (1, 1, 4, 6)
    assert crop_to_image(level, (64, 96), (1, 1)).shape == (1, 1, 1, 1)


def test_normalize_attention_modes():
    logits = np.array([[[[0., 1.], [2., 4.]]], [[[3., 3.], [3., 3.]]]])
    minmax = normalize_attention(logits, 'logits')
    np.testing.assert_allclose(minmax[0, 0], [[0, .25], [.5, 1]])
    np.testing.assert_array_equal(minmax[1, 0], 0)  # constant map
    soft = normalize_attention(logits, 'softmax')
    # softmax / its max == exp(a - max a): the peak is 1
    np.testing.assert_allclose(soft[0, 0], np.exp(logits[0, 0] - 4),
                               rtol=1e-6)
    np.testing.assert_allclose(soft[1, 0], 1)
    ref = torch.tensor(logits[0, 0]).flatten().softmax(0)
    np.testing.assert_allclose(soft[0, 0].ravel(), ref / ref.max(),
                               rtol=1e-6)
    with pytest.raises(ValueError):
        normalize_attention(logits, 'sigmoid')


def test_render_attention_grid_places_masks_and_heat_maps():
    image = np.full((30, 40, 3), 128, dtype=np.uint8)
    masks = np.zeros((2, 30, 40), dtype=bool)
    masks[0, :15] = True
    maps = [np.random.default_rng(0).random((2, 3, 4, 5)),
            np.zeros((2, 3, 2, 3))]
    grid = render_attention_grid(image, masks, maps, ['a\n0.9', 'b\n0.5'],
                                 cell_size=40, label_w=60, header_h=20, gap=2)
    layout = grid_layout(2, 2, 3, (30, 40), 60, 20, 2)
    assert grid.shape == (layout.height, layout.width, 3)
    assert grid.dtype == np.uint8
    y, x = layout.cell_origin(0, 0)
    # mask cell: tinted inside the mask, untouched outside
    assert (grid[y + 2, x + 2] != 128).any()
    np.testing.assert_array_equal(grid[y + 25, x + 2], 128)
    # an all-zero level is the dark end of the colormap everywhere
    y, x = layout.cell_origin(1, 4)
    cell = grid[y:y + 30, x:x + 40].reshape(-1, 3)
    assert (cell == cell[0]).all()
    with pytest.raises(ValueError):
        render_attention_grid(image, masks, maps, ['only one label'])


def test_vis_attention_tool_writes_grid_of_exact_size(tmp_path):
    # 4 feature levels of which the mask decoder uses the first 3
    model_cfg = tiny_panoptic_segformer_cfg(num_levels=4, num_mask_levels=3)
    torch.manual_seed(0)
    # (mmdet's DeformableDETR writes into the head config it is given)
    model = MODELS.build(copy.deepcopy(model_cfg))
    model.init_weights()
    classes = ('a', 'b', 'c', 'sky', 'grass')
    ckpt = tmp_path / 'tiny.pth'
    torch.save(dict(state_dict=model.state_dict(),
                    meta=dict(dataset_meta=dict(classes=classes))), ckpt)
    config = tmp_path / 'tiny.py'
    Config(dict(model=model_cfg)).dump(str(config))

    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (60, 76, 3), dtype=np.uint8)
    img[10:40, 20:50] = (0, 200, 0)
    img_path = tmp_path / 'img.png'
    cv2.imwrite(str(img_path), img)
    out = tmp_path / 'grid.png'

    grid = _load_tool().main([
        str(config), str(ckpt), str(img_path), '--out', str(out),
        '--topk', '3', '--cell-size', '48'])

    written = cv2.imread(str(out))
    cell_h, cell_w = 38, 48               # 60 x 76 image, longer side 48
    rows, cols = 3, 1 + 3 * 2             # 3 mask levels x 2 heads + mask
    label_w, header_h, gap = 140, 22, 2   # the defaults
    assert written.shape == (header_h + rows * (gap + cell_h),
                             label_w + cols * (gap + cell_w), 3)
    np.testing.assert_array_equal(written[..., ::-1], grid)


def test_heat_cells_are_mmengine_draw_featmap():
    from mmengine.visualization import Visualizer
    rng = np.random.default_rng(1)
    image = rng.integers(0, 255, (30, 40, 3), dtype=np.uint8)
    masks = np.zeros((1, 30, 40), dtype=bool)
    maps = [rng.random((1, 2, 4, 5)).astype(np.float32)]
    grid = render_attention_grid(image, masks, maps, ['a'], cell_size=40,
                                 label_w=60, header_h=20, gap=2)
    layout = grid_layout(1, 1, 2, (30, 40), 60, 20, 2)
    small = cv2.resize(image, (40, 30), interpolation=cv2.INTER_AREA)
    dimmed = cv2.cvtColor(cv2.cvtColor(small, cv2.COLOR_RGB2GRAY),
                          cv2.COLOR_GRAY2RGB)
    for head in range(2):
        values = cv2.resize(maps[0][0, head], (40, 30),
                            interpolation=cv2.INTER_LINEAR)
        expected = Visualizer.draw_featmap(
            torch.from_numpy(values)[None], dimmed, channel_reduction=None,
            topk=0, alpha=0.6)
        y, x = layout.cell_origin(0, 1 + head)
        np.testing.assert_array_equal(grid[y:y + 30, x:x + 40], expected)

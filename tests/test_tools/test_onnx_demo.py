"""``demo/onnx_demo.py``: onnxruntime network, PyTorch pre/post-processing,
the same files as ``demo/image_demo.py``."""
import importlib.util
import json
import os
import os.path as osp
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
from mmengine.config import Config

from panseg_plugin.testing import load_script, untrained_model

REPO_ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
TOY_CONFIG = osp.join(REPO_ROOT, 'projects', 'toy_panoptic', 'configs',
                      'panoptic-segformer_r18-tiny_toy-panoptic.py')
NAMES = ('000002', '000003')
HAVE_ORT = all(
    importlib.util.find_spec(name) is not None
    for name in ('onnx', 'onnxruntime'))
pytestmark = pytest.mark.skipif(
    not HAVE_ORT, reason='onnx and onnxruntime are optional: pip install -r '
    'requirements/optional.txt')


def load(name, *path):
    return load_script(osp.join(REPO_ROOT, *path), name)


def read_png_ids(path):
    bgr = cv2.imread(path, cv2.IMREAD_COLOR).astype(np.int64)
    return bgr[..., 2] + 256 * bgr[..., 1] + 256**2 * bgr[..., 0]


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    """Two 64 x 64 toy images (they fill the padded input: no padding
    mask), a checkpoint with class and mask layers scaled up so that maps
    hold several segments, and its ONNX export at 64 x 64."""
    root = tmp_path_factory.mktemp('onnx_demo')
    subprocess.run([
        sys.executable,
        osp.join(REPO_ROOT, 'tools', 'dataset_converters',
                 'make_toy_panoptic.py'),
        str(root / 'toy'), '--num-train', '1', '--num-val', '2',
        '--img-size', '64', '--seed', '3'
    ], check=True, capture_output=True, timeout=120)
    cfg = Config.fromfile(TOY_CONFIG)
    model = untrained_model(cfg)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for layer in (model.bbox_head.mask_branch, model.bbox_head.cls_branch):
            layer.weight.copy_(
                torch.randn(layer.weight.shape, generator=generator) * 0.5)
    ckpt = str(root / 'toy.pth')
    torch.save(dict(state_dict=model.state_dict(),
                    meta=dict(dataset_meta=dict(
                        cfg.test_dataloader.dataset.metainfo))), ckpt)
    onnx_file = str(root / 'toy.onnx')
    report = load('panseg_pytorch2onnx', 'tools', 'deployment',
                  'pytorch2onnx.py').main([
                      TOY_CONFIG, ckpt, '--shape', '64', '64', '--out',
                      onnx_file, '--runs', '0'])
    assert report['ok']
    images = str(root / 'toy' / 'val')
    assert sorted(os.listdir(images)) == [f'{n}.jpg' for n in NAMES]
    return dict(images=images, checkpoint=ckpt, onnx=onnx_file, root=root)


def test_same_files_as_the_pytorch_demo(data, tmp_path):
    torch_dir, onnx_dir = str(tmp_path / 'torch'), str(tmp_path / 'onnx')
    load('panseg_image_demo', 'demo', 'image_demo.py').main([
        data['images'], TOY_CONFIG, '--weights', data['checkpoint'],
        '--out-dir', torch_dir, '--device', 'cpu', '--batch-size', '2'])
    results = load('panseg_onnx_demo', 'demo', 'onnx_demo.py').main([
        data['images'], data['onnx'], '--config', TOY_CONFIG, '--out-dir',
        onnx_dir, '--batch-size', '2'])
    assert len(results['predictions']) == 2
    seen = set()
    for name in NAMES:
        png = f'preds/{name}_panoptic_seg.png'
        ids = read_png_ids(osp.join(onnx_dir, png))
        assert ids.shape == (64, 64)
        assert np.array_equal(ids, read_png_ids(osp.join(torch_dir, png)))
        seen |= set(np.unique(ids).tolist())
        with open(osp.join(onnx_dir, 'preds', f'{name}.json')) as f:
            got = json.load(f)
        with open(osp.join(torch_dir, 'preds', f'{name}.json')) as f:
            expected = json.load(f)
        assert got['labels'] == expected['labels']
        assert got['masks'] == expected['masks']
        assert np.allclose(got['scores'], expected['scores'], atol=1e-5)
        img = cv2.imread(osp.join(onnx_dir, 'vis', f'{name}.jpg'))
        assert img is not None and img.shape == (64, 64, 3)
    # worth something only with void, stuff and things in the maps
    assert 0 in seen and any(0 < i < 1000 for i in seen) and \
        any(i >= 1000 for i in seen), seen


def test_script_runs_and_refuses_images_larger_than_the_export(
        data, tmp_path):
    image = osp.join(data['images'], f'{NAMES[0]}.jpg')
    large = str(tmp_path / 'large.jpg')
    cv2.imwrite(large, cv2.resize(cv2.imread(image), (128, 96)))
    demo = osp.join(REPO_ROOT, 'demo', 'onnx_demo.py')
    proc = subprocess.run(
        [sys.executable, demo, large, data['onnx'], '--config', TOY_CONFIG,
         '--out-dir', str(tmp_path / 'out')],
        capture_output=True, text=True, cwd=str(tmp_path), timeout=300)
    assert proc.returncode != 0
    assert 'large.jpg: preprocessed to 96 x 128, larger than the input ' \
        '64 x 64' in proc.stderr
    assert 'Export again with --shape of at least 96 128' in proc.stderr
    proc = subprocess.run(
        [sys.executable, demo, image, data['onnx'], '--config', TOY_CONFIG,
         '--out-dir', str(tmp_path / 'out'), '--no-save-vis'],
        capture_output=True, text=True, cwd=str(tmp_path), timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert osp.isfile(
        str(tmp_path / 'out' / 'preds' / f'{NAMES[0]}_panoptic_seg.png'))
    assert not osp.exists(str(tmp_path / 'out' / 'vis'))


def test_missing_onnx_file_is_refused(tmp_path, capsys):
    demo = load('panseg_onnx_demo', 'demo', 'onnx_demo.py')
    with pytest.raises(SystemExit):
        demo.parse_args(['img.jpg', str(tmp_path / 'x.onnx'), '--config',
                         TOY_CONFIG])
    assert 'pytorch2onnx.py' in capsys.readouterr().err

"""``demo/image_demo.py``: DetInferencer from the command line."""
import copy
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
from toy_panoptic import TOY_METAINFO, make_toy_panoptic

REPO_ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
DEMO = osp.join(REPO_ROOT, 'demo', 'image_demo.py')
TOY_CONFIG = osp.join(REPO_ROOT, 'projects', 'toy_panoptic', 'configs',
                      'panoptic-segformer_r18-tiny_toy-panoptic.py')
NAMES = ('000002.jpg', '000003.jpg')


def load_demo():
    return load_script(DEMO, 'panseg_image_demo')


def read_png_ids(path):
    bgr = cv2.imread(path, cv2.IMREAD_COLOR).astype(np.int64)
    return bgr[..., 2] + 256 * bgr[..., 1] + 256**2 * bgr[..., 0]


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    """Two toy images (56 x 72) and an untrained checkpoint that carries
    its config, as the checkpoints of tools/train.py do."""
    root = tmp_path_factory.mktemp('demo')
    toy = make_toy_panoptic(str(root / 'toy'), num_train=1, num_val=2,
                            img_size=(72, 56), seed=2)
    cfg = Config.fromfile(TOY_CONFIG)
    cfg.model.backbone.init_cfg = None  # no pretrained file in the test
    # a copy: mmdet's DeformableDETR writes into the head config it builds
    model = untrained_model(copy.deepcopy(cfg))
    ckpt = str(root / 'toy.pth')
    torch.save(dict(state_dict=model.state_dict(),
                    meta=dict(dataset_meta=TOY_METAINFO,
                              cfg=cfg.pretty_text)), ckpt)
    assert sorted(os.listdir(toy['val']['img_dir'])) == list(NAMES)
    return dict(images=toy['val']['img_dir'], checkpoint=ckpt)


def check_outputs(out_dir, vis=True, preds=True):
    assert osp.isdir(osp.join(out_dir, 'vis')) == vis
    assert osp.isdir(osp.join(out_dir, 'preds')) == preds
    for name in NAMES:
        stem = osp.splitext(name)[0]
        if vis:
            img = cv2.imread(osp.join(out_dir, 'vis', name))
            assert img is not None and img.shape == (56, 72, 3)
        if preds:
            assert osp.isfile(osp.join(out_dir, 'preds', f'{stem}.json'))
            ids = read_png_ids(
                osp.join(out_dir, 'preds', f'{stem}_panoptic_seg.png'))
            assert ids.shape == (56, 72)


def test_demo_script_on_a_folder(data, tmp_path):
    out_dir = str(tmp_path / 'out')
    proc = subprocess.run(
        [sys.executable, DEMO, data['images'], TOY_CONFIG,
         '--weights', data['checkpoint'], '--out-dir', out_dir,
         '--device', 'cpu', '--batch-size', '2'],
        capture_output=True, text=True, cwd=str(tmp_path), timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f'results have been saved at {out_dir}' in proc.stdout + \
        proc.stderr
    check_outputs(out_dir)


def test_checkpoint_as_model_reads_its_config(data, tmp_path, capsys):
    out_dir = str(tmp_path / 'out')
    results = load_demo().main([
        data['images'], data['checkpoint'], '--out-dir', out_dir,
        '--device', 'cpu', '--batch-size', '2', '--no-save-vis',
        '--print-result'])
    check_outputs(out_dir, vis=False)
    assert len(results['predictions']) == 2
    assert 'panoptic_seg_path' in capsys.readouterr().out


def test_cfg_options_reach_the_model(data, tmp_path):
    out_dir = str(tmp_path / 'out')
    load_demo().main([
        data['images'], TOY_CONFIG, '--weights', data['checkpoint'],
        '--out-dir', out_dir, '--device', 'cpu', '--batch-size', '2',
        '--cfg-options', 'model.panoptic_fusion_head.score_thr=1.01'])
    check_outputs(out_dir)
    for name in NAMES:  # nothing clears the threshold: all void
        stem = osp.splitext(name)[0]
        ids = read_png_ids(
            osp.join(out_dir, 'preds', f'{stem}_panoptic_seg.png'))
        assert (ids == 0).all()


def test_nothing_written_without_vis_and_preds(data, tmp_path):
    out_dir = str(tmp_path / 'out')
    results = load_demo().main([
        osp.join(data['images'], NAMES[0]), TOY_CONFIG,
        '--weights', data['checkpoint'], '--out-dir', out_dir,
        '--device', 'cpu', '--no-save-vis', '--no-save-pred'])
    assert not osp.exists(out_dir)
    assert len(results['predictions']) == 1
    assert results['predictions'][0]['panoptic_seg'].shape == (56, 72, 3)


@pytest.mark.parametrize('argv, message', [
    (['img.jpg'], 'give a config'),
    (['img.jpg', 'a.pth', '--weights', 'b.pth'], 'give one of them'),
    (['img.jpg', 'a.pth', '--cfg-options', 'a=1'], 'needs a config'),
    (['img.jpg', 'cfg.py', '--batch-size', '0'], '--batch-size'),
])
def test_bad_arguments_are_refused(argv, message, capsys):
    with pytest.raises(SystemExit):
        load_demo().parse_args(argv)
    assert message in capsys.readouterr().err


def test_checkpoint_given_as_model_becomes_weights():
    args = load_demo().parse_args(['img.jpg', 'https://host/x.pth'])
    assert args.model is None and args.weights == 'https://host/x.pth'

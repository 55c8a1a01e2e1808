"""mmdet's DetInferencer on Panoptic SegFormer checkpoints.

The model is the toy project's (ResNet-18 with 32 base channels, 64-dim
transformer), initialised from a fixed seed and saved with ``torch.save``
the way mmengine's checkpoints are laid out (``state_dict`` plus ``meta``
with ``dataset_meta`` and ``cfg``). See
:func:`panseg_plugin.testing.untrained_model` for why its maps have
segments; forcing ``score_thr`` above 1 gives all-void maps.
"""
import json
import os
import os.path as osp
import subprocess
import sys
from collections import OrderedDict

import cv2
import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.runner.checkpoint import CheckpointLoader
from pycocotools import mask as mask_utils

from mmdet.apis import DetInferencer
from mmdet.evaluation.functional import INSTANCE_OFFSET
from panseg_plugin.testing import untrained_model
from panseg_plugin.visualization import PanopticSegFormerVisualizer
from toy_panoptic import TOY_METAINFO, make_toy_panoptic

TOY_CONFIG = osp.join(
    osp.dirname(__file__), '..', '..', 'projects', 'toy_panoptic', 'configs',
    'panoptic-segformer_r18-tiny_toy-panoptic.py')
NUM_THINGS = len(TOY_METAINFO['thing_classes'])
NUM_CLASSES = len(TOY_METAINFO['classes'])
THINGS_METAINFO = dict(
    classes=TOY_METAINFO['thing_classes'],
    thing_classes=TOY_METAINFO['thing_classes'],
    stuff_classes=(),
    palette=TOY_METAINFO['palette'][:NUM_THINGS])
# (height, width) of the two inputs: odd sizes, different aspect ratios.
SHAPES = {'000002.jpg': (56, 72), 'odd.png': (90, 50)}


def save_checkpoint(cfg, dataset_meta, path, with_cfg=False, **extra):
    """An untrained model saved as mmengine lays checkpoints out;
    ``with_cfg`` stores the config text too, as tools/train.py does."""
    model = untrained_model(cfg)
    meta = dict(dataset_meta=dataset_meta, **extra)
    if with_cfg:
        meta['cfg'] = cfg.pretty_text
    torch.save(dict(state_dict=model.state_dict(), meta=meta), path)
    return model.state_dict()


def read_png_ids(path):
    """COCO panoptic PNG -> ids (H, W): R + 256 G + 256^2 B."""
    bgr = cv2.imread(path, cv2.IMREAD_COLOR).astype(np.int64)
    return bgr[..., 2] + 256 * bgr[..., 1] + 256**2 * bgr[..., 0]


def expected_png_ids(sem_seg, num_classes):
    """What the PNG must hold for a ``pred_panoptic_seg``: void -> 0."""
    ids = sem_seg[0].cpu().numpy().astype(np.int64)
    return np.where(ids % INSTANCE_OFFSET == num_classes, 0, ids)


@pytest.fixture(scope='module')
def inputs(tmp_path_factory):
    """A folder with two images of different sizes."""
    root = tmp_path_factory.mktemp('inference')
    toy = make_toy_panoptic(str(root / 'toy'), num_train=1, num_val=1,
                            img_size=(72, 56), seed=0)
    folder = root / 'inputs'
    folder.mkdir()
    img = cv2.imread(osp.join(toy['val']['img_dir'], '000002.jpg'))
    cv2.imwrite(str(folder / '000002.jpg'), img)
    h, w = SHAPES['odd.png']
    cv2.imwrite(str(folder / 'odd.png'), cv2.resize(img, (w, h)))
    return str(folder)


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    path = str(tmp_path_factory.mktemp('ckpt') / 'toy.pth')
    # A numpy array in meta, as in the checkpoints mmengine's Runner writes
    # (its message hub): torch >= 2.6 refuses it unless loaded as trusted.
    state = save_checkpoint(Config.fromfile(TOY_CONFIG), TOY_METAINFO, path,
                            with_cfg=True, seed=np.array([0]))
    return dict(path=path, state_dict=state)


@pytest.fixture(scope='module')
def inferencer(checkpoint):
    return DetInferencer(model=TOY_CONFIG, weights=checkpoint['path'],
                         device='cpu', show_progress=False)


def image_paths(folder):
    return sorted(osp.join(folder, name) for name in SHAPES)


def run(inferencer, inputs, out_dir, **kwargs):
    """Predict with files written; returns {image name: prediction}."""
    results = inferencer(inputs, batch_size=2, out_dir=str(out_dir),
                         no_save_pred=False, **kwargs)
    preds = results['predictions']
    names = [osp.basename(p['panoptic_seg_path'])[:-len('_panoptic_seg.png')]
             for p in preds]
    return {name: pred for name, pred in zip(names, preds)}


def check_outputs(out_dir, name, shape, pred):
    """Files of one image; returns the ids of its PNG."""
    stem = osp.splitext(name)[0]
    png = osp.join(out_dir, 'preds', f'{stem}_panoptic_seg.png')
    assert pred['panoptic_seg_path'] == png
    with open(osp.join(out_dir, 'preds', f'{stem}.json')) as f:
        assert json.load(f) == pred
    num = len(pred['labels'])
    assert set(pred) == {'labels', 'scores', 'bboxes', 'masks',
                         'panoptic_seg_path'}
    assert len(pred['scores']) == len(pred['bboxes']) == \
        len(pred['masks']) == num > 0
    assert all(0 <= label < NUM_THINGS for label in pred['labels'])
    assert pred['scores'] == sorted(pred['scores'], reverse=True)
    for rle in pred['masks']:
        assert tuple(rle['size']) == shape
        assert mask_utils.decode(dict(rle, counts=rle['counts'].encode())
                                 ).shape == shape
    vis = cv2.imread(osp.join(out_dir, 'vis', name))
    assert vis is not None and vis.shape == shape + (3, )
    ids = read_png_ids(png)
    assert ids.shape == shape
    return ids


def test_inferencer_uses_the_plugin_visualizer_and_checkpoint(
        inferencer, checkpoint):
    assert type(inferencer.visualizer) is PanopticSegFormerVisualizer
    meta = inferencer.model.dataset_meta
    assert tuple(meta['classes']) == TOY_METAINFO['classes']
    assert [tuple(c) for c in meta['palette']] == \
        [tuple(c) for c in TOY_METAINFO['palette']]
    state = inferencer.model.state_dict()
    assert state.keys() == checkpoint['state_dict'].keys()
    for key, value in checkpoint['state_dict'].items():
        assert torch.equal(state[key], value), key


def test_folder_batch_writes_panoptic_png_json_and_vis(
        inferencer, inputs, tmp_path):
    preds = run(inferencer, inputs, tmp_path)
    assert set(preds) == {osp.splitext(n)[0] for n in SHAPES}
    samples = inferencer(image_paths(inputs), batch_size=2,
                         return_datasamples=True)['predictions']
    num_segments = 0
    for name, sample in zip(sorted(SHAPES), samples):
        ids = check_outputs(str(tmp_path), name, SHAPES[name],
                            preds[osp.splitext(name)[0]])
        np.testing.assert_array_equal(
            ids, expected_png_ids(sample.pred_panoptic_seg.sem_seg,
                                  NUM_CLASSES))
        segments = np.unique(ids[ids != 0])
        num_segments += len(segments)
        things = segments[segments >= INSTANCE_OFFSET]
        stuff = segments[segments < INSTANCE_OFFSET]
        assert np.all(things % INSTANCE_OFFSET < NUM_THINGS)
        assert np.all((NUM_THINGS <= stuff) & (stuff < NUM_CLASSES))
    assert num_segments > 0, 'expected an untrained model to paint segments'


def test_batch_with_one_all_void_prediction(inferencer, inputs, tmp_path,
                                            monkeypatch):
    """One batch of two images where only one clears ``score_thr``."""
    head = inferencer.model.panoptic_fusion_head
    best = []
    predict = head.predict

    def spy(mask_cls, *args, **kwargs):
        best.extend(mask_cls.sigmoid().flatten(1).max(1).values.tolist())
        return predict(mask_cls, *args, **kwargs)

    paths = image_paths(inputs)
    monkeypatch.setattr(head, 'predict', spy)
    inferencer(paths, batch_size=2)
    assert len(best) == 2 and best[0] != best[1]
    monkeypatch.setattr(head, 'predict', predict)
    # Only the best-scoring image keeps a query; with mask_thr 0 that query
    # covers it entirely, while the other image stays void.
    monkeypatch.setattr(head, 'score_thr', sum(best) / 2)
    monkeypatch.setattr(head, 'mask_thr', 0.0)
    monkeypatch.setattr(head, 'mask_score_power', 0.0)
    preds = run(inferencer, paths, tmp_path)
    kept = int(np.argmax(best))
    for i, name in enumerate(sorted(SHAPES)):
        ids = check_outputs(str(tmp_path), name, SHAPES[name],
                            preds[osp.splitext(name)[0]])
        assert (ids != 0).all() if i == kept else (ids == 0).all()


def test_score_thr_above_one_from_cfg_gives_void_maps_and_bare_drawings(
        checkpoint, inputs, tmp_path):
    cfg = Config.fromfile(TOY_CONFIG)
    cfg.model.panoptic_fusion_head.score_thr = 1.01
    inferencer = DetInferencer(model=cfg, weights=checkpoint['path'],
                               device='cpu', show_progress=False)
    # pred_score_thr > 1 also hides the instances: the drawing is the image.
    preds = run(inferencer, inputs, tmp_path, pred_score_thr=1.01)
    for name in SHAPES:
        ids = check_outputs(str(tmp_path), name, SHAPES[name],
                            preds[osp.splitext(name)[0]])
        assert (ids == 0).all()
        image = cv2.imread(osp.join(inputs, name)).astype(np.float32)
        vis = cv2.imread(str(tmp_path / 'vis' / name)).astype(np.float32)
        assert np.abs(image - vis).mean() < 4  # JPEG re-encoding only


def test_checkpoint_alone_carries_the_config(checkpoint, inputs, tmp_path):
    inferencer = DetInferencer(model=None, weights=checkpoint['path'],
                               device='cpu', show_progress=False)
    assert inferencer.model.cfg.model.type == 'PanopticSegFormer'
    assert type(inferencer.visualizer) is PanopticSegFormerVisualizer
    preds = run(inferencer, inputs, tmp_path)
    for name in SHAPES:
        check_outputs(str(tmp_path), name, SHAPES[name],
                      preds[osp.splitext(name)[0]])


def test_weights_are_read_by_mmengine_checkpoint_loader(
        checkpoint, monkeypatch):
    """Weights go through ``CheckpointLoader``, so every scheme it knows
    (http(s)://, s3 backends, ...) works as for any mmdet model. A fake
    scheme stands in for a URL here: it loads as ``load_from_http`` does,
    with torch's default (``weights_only``) loading."""
    loaded = []

    def load_from_fake(filename, map_location=None):
        loaded.append(filename)
        local = checkpoint['path'][:-len('toy.pth')] + 'remote.pth'
        state = torch.load(checkpoint['path'], map_location=map_location,
                           weights_only=False)
        state['meta'].pop('seed')  # a published checkpoint: plain types
        torch.save(state, local)
        return torch.load(local, map_location=map_location,
                          weights_only=True)

    schemes = OrderedDict(CheckpointLoader._schemes)
    schemes['pantest://'] = load_from_fake
    schemes.move_to_end('pantest://', last=False)
    monkeypatch.setattr(CheckpointLoader, '_schemes', schemes)
    inferencer = DetInferencer(model=TOY_CONFIG,
                               weights='pantest://host/toy.pth',
                               device='cpu', show_progress=False)
    assert loaded == ['pantest://host/toy.pth']
    state = inferencer.model.state_dict()
    for key, value in checkpoint['state_dict'].items():
        assert torch.equal(state[key], value), key


def things_only_config():
    """The toy config as an instance segmentation model: no stuff."""
    cfg = Config.fromfile(TOY_CONFIG)
    cfg.merge_from_dict({
        'model.bbox_head.num_stuff_classes': 0,
        'model.panoptic_fusion_head.num_stuff_classes': 0,
        'train_dataloader.dataset.metainfo': THINGS_METAINFO,
        'test_dataloader.dataset.metainfo': THINGS_METAINFO,
    })
    return cfg


@pytest.mark.parametrize('panoptic_on', [True, False])
def test_things_only_config_writes_instance_predictions(
        inputs, tmp_path, panoptic_on):
    cfg = things_only_config()
    cfg.model.panoptic_fusion_head.panoptic_on = panoptic_on
    path = str(tmp_path / 'things.pth')
    save_checkpoint(cfg, THINGS_METAINFO, path)
    inferencer = DetInferencer(model=cfg, weights=path, device='cpu',
                               show_progress=False)
    assert inferencer.model.dataset_meta['classes'] == \
        THINGS_METAINFO['classes']
    out_dir = tmp_path / 'out'
    results = inferencer(image_paths(inputs), batch_size=2,
                         out_dir=str(out_dir), no_save_pred=False)
    for name, pred in zip(sorted(SHAPES), results['predictions']):
        stem = osp.splitext(name)[0]
        shape = SHAPES[name]
        with open(out_dir / 'preds' / f'{stem}.json') as f:
            assert json.load(f) == pred
        assert len(pred['labels']) == len(pred['masks']) > 0
        assert all(0 <= label < NUM_THINGS for label in pred['labels'])
        assert all(tuple(rle['size']) == shape for rle in pred['masks'])
        assert cv2.imread(str(out_dir / 'vis' / name)).shape == shape + (3, )
        png = out_dir / 'preds' / f'{stem}_panoptic_seg.png'
        assert ('panoptic_seg_path' in pred) == panoptic_on == png.exists()
        if panoptic_on:
            ids = read_png_ids(str(png))
            assert ids.shape == shape
            segments = ids[ids != 0]
            assert np.all(segments >= INSTANCE_OFFSET)
            assert np.all(segments % INSTANCE_OFFSET < NUM_THINGS)
    assert sorted(os.listdir(out_dir / 'vis')) == sorted(SHAPES)


def test_config_custom_imports_alone_run_det_inferencer(
        checkpoint, inputs, tmp_path):
    """What a user types: only mmdet is imported, the config's
    ``custom_imports`` imports the plugin; mmdet's ``DetInferencer`` runs
    the config as it is (its test pipeline loads images with mmcv's
    ``LoadImageFromFile``, which the inferencer swaps for its own)."""
    config = str(tmp_path / 'config.py')
    Config.fromfile(TOY_CONFIG).dump(config)
    script = (
        'import sys\n'
        'from mmdet.apis import DetInferencer\n'
        'DetInferencer(model=sys.argv[1], weights=sys.argv[2], '
        'device="cpu", show_progress=False)(sys.argv[3], '
        'out_dir=sys.argv[4], no_save_pred=False)\n'
        'assert "panseg_plugin" in sys.modules\n')
    image = osp.join(inputs, '000002.jpg')
    proc = subprocess.run(
        [sys.executable, '-c', script, config, checkpoint['path'], image,
         str(tmp_path / 'out')],
        capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / 'out' / 'preds' / '000002_panoptic_seg.png').exists()

"""Tests of the toy project's synthetic panoptic data set and its use by
mmdet."""
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

from panseg_plugin.testing import load_script
from toy_panoptic import CATEGORIES, TOY_METAINFO, make_toy_panoptic

HAS_PANOPTICAPI = importlib.util.find_spec('panopticapi') is not None
NUM_THINGS = len(TOY_METAINFO['thing_classes'])
ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
CLI = osp.join(ROOT, 'tools', 'dataset_converters', 'make_toy_panoptic.py')


@pytest.fixture(scope='module')
def toy(tmp_path_factory):
    out_dir = str(tmp_path_factory.mktemp('toy'))
    return make_toy_panoptic(
        out_dir, num_train=6, num_val=3, img_size=(96, 72), seed=3)


def _load(path):
    with open(path) as f:
        return json.load(f)


def _read_ids(path):
    bgr = cv2.imread(path, cv2.IMREAD_COLOR).astype(np.int64)
    return bgr[..., 2] + 256 * bgr[..., 1] + 256**2 * bgr[..., 0]


def _tree_bytes(root):
    files = {}
    for folder, _, names in os.walk(root):
        for name in names:
            path = osp.join(folder, name)
            with open(path, 'rb') as f:
                files[osp.relpath(path, root)] = f.read()
    return files


def _build_dataset(toy, split, pipeline, **kwargs):
    from mmdet.datasets import CocoPanopticDataset
    from mmdet.utils import register_all_modules
    register_all_modules()
    return CocoPanopticDataset(
        data_root=toy['data_root'],
        ann_file=f'annotations/panoptic_{split}.json',
        data_prefix=dict(
            img=f'{split}/', seg=f'annotations/panoptic_{split}/'),
        metainfo=TOY_METAINFO,
        pipeline=pipeline,
        **kwargs)


def _pipeline(with_pack=True):
    pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='LoadPanopticAnnotations', with_bbox=True, with_mask=True,
             with_seg=True),
    ]
    if with_pack:
        pipeline.append(dict(type='PackDetInputs'))
    return pipeline


def test_metainfo_matches_categories(toy):
    classes = TOY_METAINFO['classes']
    assert classes == (TOY_METAINFO['thing_classes'] +
                       TOY_METAINFO['stuff_classes'])
    assert NUM_THINGS >= 3 and len(TOY_METAINFO['stuff_classes']) >= 2
    assert len(TOY_METAINFO['palette']) == len(classes)
    for split in ('train', 'val'):
        cats = _load(toy[split]['panoptic_json'])['categories']
        assert cats == CATEGORIES
        assert [c['id'] for c in cats] == list(range(1, len(classes) + 1))
        assert tuple(c['name'] for c in cats) == classes
        assert [c['isthing'] for c in cats] == [1] * NUM_THINGS + [0] * (
            len(classes) - NUM_THINGS)


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    kwargs = dict(num_train=4, num_val=2, img_size=64)
    make_toy_panoptic(str(tmp_path / 'a'), seed=1, **kwargs)
    make_toy_panoptic(str(tmp_path / 'b'), seed=1, **kwargs)
    make_toy_panoptic(str(tmp_path / 'c'), seed=2, **kwargs)
    a, b, c = (_tree_bytes(str(tmp_path / n)) for n in 'abc')
    assert len(a) == 1 + 4 + 2 * (4 + 2)  # meta, 4 jsons, jpg + png
    assert a == b
    assert a.keys() == c.keys()
    pngs = [k for k in a if k.endswith('.png')]
    assert any(a[k] != c[k] for k in pngs)
    assert a['annotations/panoptic_train.json'] != c[
        'annotations/panoptic_train.json']


def test_png_matches_segments_info(toy):
    cat_by_id = {c['id']: c for c in CATEGORIES}
    all_ids = []
    for split, num in (('train', 6), ('val', 3)):
        pan = _load(toy[split]['panoptic_json'])
        assert len(pan['images']) == len(pan['annotations']) == num
        num_stuff_only = 0
        for img, ann in zip(pan['images'], pan['annotations']):
            assert ann['image_id'] == img['id']
            assert ann['file_name'] == img['file_name'].replace('.jpg', '.png')
            jpg = cv2.imread(osp.join(toy[split]['img_dir'], img['file_name']))
            assert jpg.shape == (img['height'], img['width'], 3) == (72, 96, 3)
            ids = _read_ids(osp.join(toy[split]['seg_dir'], ann['file_name']))
            segments = ann['segments_info']
            # No void: every pixel is one of the listed segments.
            assert set(np.unique(ids).tolist()) == {s['id'] for s in segments}
            stuff_cats = []
            for seg in segments:
                mask = ids == seg['id']
                ys, xs = np.nonzero(mask)
                assert seg['area'] == mask.sum() > 0
                assert seg['bbox'] == [
                    xs.min(), ys.min(), xs.max() - xs.min() + 1,
                    ys.max() - ys.min() + 1
                ]
                assert seg['iscrowd'] == 0
                cat = cat_by_id[seg['category_id']]
                assert cat['isthing'] == (seg['category_id'] <= NUM_THINGS)
                if not cat['isthing']:
                    stuff_cats.append(seg['category_id'])
            assert stuff_cats and len(stuff_cats) == len(set(stuff_cats))
            num_stuff_only += len(stuff_cats) == len(segments)
            all_ids += [s['id'] for s in segments]
        assert num_stuff_only >= 1  # ceil(0.1 * num)
    assert len(all_ids) == len(set(all_ids)) and 0 not in all_ids


@pytest.mark.skipif(not HAS_PANOPTICAPI, reason='panopticapi is missing')
def test_png_encoding_matches_panopticapi(toy):
    from panopticapi.utils import rgb2id
    ann = _load(toy['train']['panoptic_json'])['annotations'][0]
    path = osp.join(toy['train']['seg_dir'], ann['file_name'])
    rgb = cv2.imread(path)[..., ::-1]
    assert (rgb2id(rgb) == _read_ids(path)).all()


def test_instances_json_has_only_things(toy):
    from pycocotools.coco import COCO
    for split in ('train', 'val'):
        coco = COCO(toy[split]['instances_json'])
        assert coco.getCatIds() == list(range(1, NUM_THINGS + 1))
        pan = _load(toy[split]['panoptic_json'])
        assert sorted(coco.getImgIds()) == [i['id'] for i in pan['images']]
        for ann in pan['annotations']:
            ids = _read_ids(osp.join(toy[split]['seg_dir'], ann['file_name']))
            things = [
                s for s in ann['segments_info']
                if s['category_id'] <= NUM_THINGS
            ]
            inst = coco.loadAnns(coco.getAnnIds(imgIds=[ann['image_id']]))
            assert sorted(a['id'] for a in inst) == sorted(
                s['id'] for s in things)
            for a in inst:
                seg = next(s for s in things if s['id'] == a['id'])
                assert a['bbox'] == seg['bbox'] and a['area'] == seg['area']
                assert a['iscrowd'] == 0
                assert (coco.annToMask(a).astype(bool) == (ids == a['id'])
                        ).all()


@pytest.mark.skipif(not HAS_PANOPTICAPI, reason='panopticapi is missing')
def test_mmdet_coco_panoptic_dataset_loads(toy):
    dataset = _build_dataset(toy, 'train', _pipeline())
    assert dataset.metainfo['classes'] == TOY_METAINFO['classes']
    assert len(dataset) == 6
    pan = _load(toy['train']['panoptic_json'])
    for i, ann in enumerate(pan['annotations']):
        sample = dataset[i]['data_samples']
        assert sample.img_id == ann['image_id']
        labels = [s['category_id'] - 1 for s in ann['segments_info']]
        things = [lab for lab in labels if lab < NUM_THINGS]
        assert sample.gt_instances.labels.tolist() == things
        assert sample.gt_instances.bboxes.shape == (len(things), 4)
        assert sample.gt_instances.masks.masks.shape == (len(things), 72, 96)
        assert sample.gt_sem_seg.sem_seg.shape == (1, 72, 96)
        assert set(sample.gt_sem_seg.sem_seg.unique().tolist()) == set(labels)
    # mmdet's base configs filter images without things when training.
    filtered = _build_dataset(
        toy, 'train', _pipeline(),
        filter_cfg=dict(filter_empty_gt=True, min_size=32))
    num_stuff_only = sum(
        all(s['category_id'] > NUM_THINGS for s in a['segments_info'])
        for a in pan['annotations'])
    assert len(filtered) == 6 - num_stuff_only


@pytest.mark.skipif(not HAS_PANOPTICAPI, reason='panopticapi is missing')
def test_mmdet_metrics_score_ground_truth_perfectly(toy):
    from mmdet.evaluation import CocoMetric, CocoPanopticMetric
    from mmdet.evaluation.functional import INSTANCE_OFFSET
    dataset = _build_dataset(toy, 'val', _pipeline(with_pack=False),
                             test_mode=True)
    pan_metric = CocoPanopticMetric(
        ann_file=toy['val']['panoptic_json'],
        seg_prefix=toy['val']['seg_dir'])
    det_metric = CocoMetric(
        ann_file=toy['val']['instances_json'], metric=['bbox', 'segm'])
    pan_metric.dataset_meta = det_metric.dataset_meta = dataset.metainfo
    for i in range(len(dataset)):
        res = dataset[i]
        pan_seg = np.zeros(res['gt_seg_map'].shape, np.int64)
        ids = _read_ids(res['seg_map_path'])
        for k, seg in enumerate(res['segments_info']):
            pan_seg[ids == seg['id']] = seg['category'] + (
                (k + 1) * INSTANCE_OFFSET if seg['is_thing'] else 0)
        num = len(res['gt_bboxes_labels'])
        sample = dict(
            img_id=res['img_id'], ori_shape=res['ori_shape'],
            img_path=res['img_path'], seg_map_path=res['seg_map_path'],
            segments_info=res['segments_info'],
            pred_panoptic_seg=dict(sem_seg=torch.from_numpy(pan_seg)[None]),
            pred_instances=dict(
                bboxes=torch.as_tensor(res['gt_bboxes'].tensor),
                labels=torch.as_tensor(res['gt_bboxes_labels']),
                scores=torch.ones(num),
                masks=torch.as_tensor(res['gt_masks'].masks, dtype=bool)))
        pan_metric.process({}, [sample])
        det_metric.process({}, [sample])
    pan_results = pan_metric.evaluate(size=len(dataset))
    assert pan_results['coco_panoptic/PQ'] == pytest.approx(100.0)
    det_results = det_metric.evaluate(size=len(dataset))
    assert det_results['coco/segm_mAP'] == pytest.approx(1.0)
    assert det_results['coco/bbox_mAP'] == pytest.approx(1.0)


def test_cli_skips_matching_data_and_keeps_foreign_files(tmp_path, capsys):
    cli = load_script(CLI, 'make_toy_panoptic')
    out_dir = str(tmp_path / 'toy')
    args = [out_dir, '--num-train', '3', '--num-val', '1', '--img-size', '64']
    assert not cli.main(args)['skipped']
    meta = osp.join(out_dir, 'toy_meta.json')
    mtime = os.stat(meta).st_mtime_ns
    for path in (osp.join(out_dir, 'notes.txt'),
                 osp.join(out_dir, 'train', 'notes.txt')):
        with open(path, 'w') as f:
            f.write('not ours')
    capsys.readouterr()
    assert cli.main(args)['skipped']
    assert 'skipped' in capsys.readouterr().out
    assert os.stat(meta).st_mtime_ns == mtime
    # Other parameters regenerate and drop the stale images of the old run.
    paths = cli.main(args[:2] + ['2'] + args[3:])
    assert not paths['skipped']
    assert sorted(os.listdir(paths['train']['img_dir'])) == [
        '000001.jpg', '000002.jpg', 'notes.txt'
    ]
    assert osp.isfile(osp.join(out_dir, 'notes.txt'))
    assert _load(meta)['num_train'] == 2


def test_plugin_and_toy_package_do_not_load_each_other(tmp_path):
    """``import panseg_plugin`` (every config's custom import) loads no
    generator; the generator and its CLI need no plugin."""
    code = ('import sys, panseg_plugin; '
            'assert not any("toy" in m for m in sys.modules), '
            '[m for m in sys.modules if "toy" in m]; '
            'assert not hasattr(panseg_plugin.datasets, "make_toy_panoptic")')
    subprocess.run([sys.executable, '-c', code], check=True, cwd=tmp_path)
    proc = subprocess.run(
        [sys.executable, CLI, str(tmp_path / 'toy'), '--num-train', '1',
         '--num-val', '1', '--img-size', '32'],
        capture_output=True, text=True, cwd=tmp_path,
        env=dict(os.environ, PYTHONPATH=''))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert 'wrote 1 train + 1 val images' in proc.stdout
    code = ('import sys, toy_panoptic; '
            'assert "panseg_plugin" not in sys.modules')
    subprocess.run([sys.executable, '-c', code], check=True,
                   cwd=osp.join(ROOT, 'projects', 'toy_panoptic'))


def test_metainfo_file_is_the_configs_metainfo():
    from mmengine.config import Config
    cfg = Config.fromfile(osp.join(ROOT, 'projects', 'toy_panoptic',
                                   'toy_panoptic', 'metainfo.py'))
    assert set(cfg.keys()) == {'metainfo'}
    assert {k: tuple(v) for k, v in cfg.metainfo.items()} == {
        k: tuple(v) for k, v in TOY_METAINFO.items()}

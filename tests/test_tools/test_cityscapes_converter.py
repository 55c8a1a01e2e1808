"""tools/dataset_converters/cityscapes_panoptic.py end to end on tiny files
in the Cityscapes layout: polygons JSON -> instanceIds.png (cityscapesScripts'
json2instanceImg, as the release was made) -> createPanopticImgs and the
completion for mmdet -> the plugin's Cityscapes data set -> 2 training
iterations of the Cityscapes config (tiny model) -> PQ and mIoU."""
import importlib.util
import json
import os
import os.path as osp

import cv2
import numpy as np
import pytest

from panseg_plugin.testing import load_script

REPO = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
CONFIG = 'panoptic-segformer_r50_8xb2-90k_cityscapes-panoptic.py'
HAS_SCRIPTS = importlib.util.find_spec('cityscapesscripts') is not None
needs_scripts = pytest.mark.skipif(
    not HAS_SCRIPTS, reason='cityscapesscripts is not installed (pip install '
    'cityscapesscripts; requirements/optional.txt)')
SPLITS = dict(train=[('aachen', 19), ('bochum', 42)],
              val=[('frankfurt', 294)])
SIZE = (48, 96)  # H, W: odd aspect like the 1024x2048 originals


def load_module(name, path):
    return load_script(path, name)


def converter():
    return load_module('cityscapes_panoptic', osp.join(
        REPO, 'tools', 'dataset_converters', 'cityscapes_panoptic.py'))


def rect(x0, y0, x1, y1):
    return [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]


def objects():
    """Stuff bands, two cars, a person, a group of persons (crowd) and an
    ego-vehicle region (ignoreInEval: void)."""
    h, w = SIZE
    return [
        dict(label='sky', polygon=rect(0, 0, w - 1, 15)),
        dict(label='building', polygon=rect(0, 10, w - 1, 28)),
        dict(label='road', polygon=rect(0, 29, w - 1, h - 1)),
        dict(label='car', polygon=rect(5, 25, 30, 40)),
        dict(label='car', polygon=rect(60, 27, 85, 42)),
        dict(label='person', polygon=rect(40, 18, 46, 38)),
        dict(label='persongroup', polygon=rect(88, 20, 94, 34)),
        dict(label='ego vehicle', polygon=rect(0, h - 5, w - 1, h - 1)),
    ]


def write_cityscapes_layout(root, seed=0):
    """gtFine/<split>/<city>/*_gtFine_polygons.json and instanceIds.png
    (drawn from the JSON by cityscapesScripts, as in the release, and saved
    as the release's 16-bit grayscale PNG: newer Pillow cannot write the
    script's 32-bit image) and leftImg8bit/<split>/<city>/*_leftImg8bit.png.
    """
    from cityscapesscripts.helpers.annotation import Annotation
    from cityscapesscripts.preparation.json2instanceImg import \
        createInstanceImage
    rng = np.random.default_rng(seed)
    h, w = SIZE
    for split, frames in SPLITS.items():
        for city, frame in frames:
            name = f'{city}_000000_{frame:06d}'
            gt_dir = osp.join(root, 'gtFine', split, city)
            img_dir = osp.join(root, 'leftImg8bit', split, city)
            os.makedirs(gt_dir, exist_ok=True)
            os.makedirs(img_dir, exist_ok=True)
            polygons = osp.join(gt_dir, f'{name}_gtFine_polygons.json')
            with open(polygons, 'w') as f:
                json.dump(dict(imgHeight=h, imgWidth=w, objects=objects()), f)
            annotation = Annotation()
            annotation.fromJsonFile(polygons)
            ids = np.array(createInstanceImage(annotation, 'ids'))
            cv2.imwrite(osp.join(gt_dir, f'{name}_gtFine_instanceIds.png'),
                        ids.astype(np.uint16))
            cv2.imwrite(osp.join(img_dir, f'{name}_leftImg8bit.png'),
                        rng.integers(0, 255, (h, w, 3), dtype=np.uint8))


@pytest.fixture(scope='module')
def city_root(tmp_path_factory):
    if not HAS_SCRIPTS:
        pytest.skip('cityscapesscripts is not installed')
    root = str(tmp_path_factory.mktemp('cityscapes'))
    write_cityscapes_layout(root)
    assert converter().main([root]) == 0
    return root


def read(root, split):
    with open(osp.join(root, 'gtFine',
                       f'cityscapes_panoptic_{split}.json')) as f:
        return json.load(f)


@needs_scripts
def test_converted_json_is_completed_for_mmdet(city_root):
    data = read(city_root, 'train')
    assert [img['file_name'] for img in data['images']] == [
        'aachen/aachen_000000_000019_leftImg8bit.png',
        'bochum/bochum_000000_000042_leftImg8bit.png']
    # each PNG named as its image (mmdet's metric finds it by that name)
    for ann in data['annotations']:
        assert ann['file_name'] == ann['image_id'] + '_leftImg8bit.png'
        assert osp.isfile(osp.join(city_root, 'gtFine',
                                   'cityscapes_panoptic_train',
                                   ann['file_name']))
    names = [c['name'] for c in data['categories']]
    from panseg_plugin.datasets import \
        PanopticSegFormerCityscapesPanopticDataset as Cityscapes
    assert tuple(names) == Cityscapes.METAINFO['classes']
    assert sum(c['isthing'] for c in data['categories']) == 8
    segments = data['annotations'][0]['segments_info']
    crowd = [s for s in segments if s['iscrowd']]
    assert [s['id'] for s in crowd] == [24]  # the person group: label id
    assert sorted(s['id'] for s in segments if s['id'] >= 1000) == [
        24000, 26000, 26001]


@needs_scripts
def test_dataset_loads_things_stuff_crowd_and_void(city_root):
    from panseg_plugin.datasets import \
        PanopticSegFormerCityscapesPanopticDataset as Cityscapes
    dataset = Cityscapes(
        data_root=city_root, ann_file='gtFine/cityscapes_panoptic_val.json',
        data_prefix=dict(img='leftImg8bit/val/',
                         seg='gtFine/cityscapes_panoptic_val/'),
        pipeline=[dict(type='LoadImageFromFile'),
                  dict(type='PanopticSegFormerLoadPanopticAnnotations')])
    result = dataset[0]
    classes = dataset.metainfo['classes']
    # segments in id order: person 24000, cars 26000 and 26001
    assert [classes[i] for i in result['gt_bboxes_labels']] == [
        'person', 'car', 'car']
    seg = result['gt_seg_map']
    assert seg.shape == SIZE
    assert seg[0, 0] == classes.index('sky')
    assert seg[-1, 0] == 255  # ego vehicle: void
    assert seg[25, 90] == classes.index('person')  # crowd keeps its label


@needs_scripts
def test_two_iterations_then_pq_and_miou(city_root, tmp_path):
    runs = load_module('tiny_data_runs', osp.join(
        REPO, 'tests', 'test_datasets', 'tiny_data_runs.py'))
    cfg = runs.tiny_run_cfg(CONFIG, city_root, tmp_path, 8, 11)
    runner, metrics = runs.train_and_test(cfg)
    assert runner.iter == 2
    for key in ('coco_panoptic/PQ', 'coco_panoptic/PQ_th',
                'coco_panoptic/PQ_st', 'sem_seg/mIoU', 'sem_seg/aAcc'):
        assert key in metrics and np.isfinite(metrics[key]), key


@needs_scripts
def test_missing_downloads_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match='gtFine_trainvaltest.zip'):
        converter().main([str(tmp_path)])
    write_cityscapes_layout(str(tmp_path))
    os.remove(osp.join(tmp_path, 'leftImg8bit', 'val', 'frankfurt',
                       'frankfurt_000000_000294_leftImg8bit.png'))
    with pytest.raises(FileNotFoundError,
                       match='leftImg8bit_trainvaltest.zip'):
        converter().main([str(tmp_path), '--splits', 'val'])

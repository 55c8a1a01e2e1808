"""Bad panoptic input: each case gives a clear message or a handled sample.

Every test breaks a copy of a tiny toy set (4 train + 2 val images of
64x48, ids 1-4 train, 5-6 val) in ``tmp_path``; docs/robustness.md lists
the cases.
"""
import json
import logging
import math
import os.path as osp
import re
import shutil

import cv2
import numpy as np
import pytest
import torch
from mmcv.transforms import BaseTransform, LoadImageFromFile
from mmengine.dataset import pseudo_collate
from mmengine.logging import MMLogger
from PIL import Image

from mmdet.datasets import CocoPanopticDataset
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from panseg_plugin.datasets.panoptic_segformer_coco_panoptic import \
    PanopticSegFormerCocoPanopticDataset
from panseg_plugin.datasets.transforms.loading import (
    PanopticSegFormerCorruptFileError, segment_ids)
from panseg_plugin.testing import tiny_panoptic_segformer_cfg
from toy_panoptic import TOY_METAINFO, make_toy_panoptic

LOAD = [
    dict(type='LoadImageFromFile'),
    dict(type='PanopticSegFormerLoadPanopticAnnotations'),
]
PACK = LOAD + [dict(type='PackDetInputs')]
ANN = 'annotations/panoptic_train.json'


@pytest.fixture(scope='module')
def toy_src(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('toy_src'))
    make_toy_panoptic(root, num_train=4, num_val=2, img_size=(64, 48), seed=1)
    return root


@pytest.fixture
def root(toy_src, tmp_path):
    """A private copy of the toy set, to break."""
    dst = str(tmp_path / 'toy')
    shutil.copytree(toy_src, dst)
    return dst


@pytest.fixture
def warnings_log():
    """Warnings logged through mmengine's current logger."""

    class Collect(logging.Handler):

        def __init__(self):
            super().__init__(logging.WARNING)
            self.messages = []

        def emit(self, record):
            self.messages.append(record.getMessage())

    logger = MMLogger.get_current_instance()
    handler = Collect()
    logger.addHandler(handler)
    yield handler.messages
    logger.removeHandler(handler)


def build(root, pipeline=LOAD, metainfo=TOY_METAINFO, cls=None, **kwargs):
    cls = cls or PanopticSegFormerCocoPanopticDataset
    kwargs.setdefault('filter_cfg', dict(filter_empty_gt=False))
    prefix = dict(img='train/', seg='annotations/panoptic_train/')
    return cls(data_root=root, ann_file=ANN, metainfo=metainfo,
               data_prefix=prefix, pipeline=pipeline, **kwargs)


def img_file(root, img_id):
    return osp.join(root, 'train', f'{img_id:06d}.jpg')


def png_file(root, img_id):
    return osp.join(root, 'annotations', 'panoptic_train', f'{img_id:06d}.png')


def read_json(root):
    with open(osp.join(root, ANN)) as f:
        return json.load(f)


def write_json(root, data):
    with open(osp.join(root, ANN), 'w') as f:
        json.dump(data, f)


def read_ids(path):
    bgr = cv2.imread(path, cv2.IMREAD_COLOR).astype(np.int64)
    return bgr[..., 2] + 256 * bgr[..., 1] + 256**2 * bgr[..., 0]


def write_ids(path, ids):
    rgb = np.stack([ids % 256, ids // 256 % 256, ids // 65536], -1)
    cv2.imwrite(path, rgb[..., ::-1].astype(np.uint8))


def truncate(path):
    with open(path, 'rb') as f:
        data = f.read()
    with open(path, 'wb') as f:
        f.write(data[:len(data) // 2])


def naming(messages, path):
    return [m for m in messages if path in m]


def test_same_targets_as_mmdet_on_clean_data(toy_src):
    mmdet_pipeline = [dict(type='LoadImageFromFile'),
                      dict(type='LoadPanopticAnnotations')]
    ours = build(toy_src)
    theirs = build(toy_src, cls=CocoPanopticDataset, pipeline=mmdet_pipeline)
    assert len(ours) == len(theirs) == 4
    for i in range(len(ours)):
        got, want = ours[i], theirs[i]
        for key in ('gt_seg_map', 'gt_bboxes_labels', 'gt_ignore_flags'):
            assert np.array_equal(got[key], want[key]), key
        assert torch.equal(got['gt_bboxes'].tensor, want['gt_bboxes'].tensor)
        assert np.array_equal(got['gt_masks'].masks, want['gt_masks'].masks)


@pytest.mark.parametrize('kind', ['image', 'png'])
def test_corrupt_file_is_skipped_with_one_warning_in_training(
        root, warnings_log, kind):
    bad = (img_file if kind == 'image' else png_file)(root, 2)
    truncate(bad)
    dataset = build(root)
    np.random.seed(0)
    epochs = [[dataset[i] for i in range(len(dataset))] for _ in range(3)]
    assert all(r is not None and r['img_id'] != 2 for e in epochs for r in e)
    assert dataset.num_skipped >= 3  # the random refetch may hit it again
    assert len(naming(warnings_log, bad)) == 1


@pytest.mark.parametrize('kind', ['image', 'png'])
def test_corrupt_file_raises_naming_it_in_testing(root, kind):
    bad = (img_file if kind == 'image' else png_file)(root, 2)
    truncate(bad)
    dataset = build(root, test_mode=True)
    with pytest.raises(PanopticSegFormerCorruptFileError,
                       match=re.escape(bad)):
        dataset[1]


def test_mmcv_loader_fails_anonymously_on_truncated_image(root):
    """Why the data set looks for the corrupt file itself: mmcv asserts
    outside its ``try``, even with ``ignore_empty``."""
    truncate(img_file(root, 1))
    with pytest.raises(AssertionError):
        LoadImageFromFile(ignore_empty=True)(dict(img_path=img_file(root, 1)))


def test_other_pipeline_errors_are_not_taken_for_corrupt_files(root):
    """A failing pipeline whose files all decode raises its own error, in
    training too (nothing is skipped)."""

    class Boom(BaseTransform):

        def transform(self, results):
            raise RuntimeError('boom')

    dataset = build(root, pipeline=LOAD + [dict(type=Boom)])
    with pytest.raises(RuntimeError, match='boom'):
        dataset[0]
    assert dataset.num_skipped == 0


def test_exif_rotated_image_raises_naming_both_files_in_testing(root):
    """In training the sample is skipped instead:
    tests/test_datasets/test_size_check.py."""
    path = img_file(root, 1)
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 on display
    Image.open(path).save(path, exif=exif.tobytes())
    with pytest.raises(ValueError) as err:
        build(root, test_mode=True)[0]
    message = str(err.value)
    assert path in message and png_file(root, 1) in message
    assert 'EXIF' in message and 'rotate the PNG' in message


def test_png_of_other_size_raises_naming_both_files_in_testing(root):
    path = png_file(root, 1)
    write_ids(path, read_ids(path)[:32, :32])
    with pytest.raises(ValueError, match='32x32') as err:
        build(root, test_mode=True)[0]
    assert img_file(root, 1) in str(err.value) and path in str(err.value)


@pytest.mark.parametrize('mode', ['gray', 'gray16', 'rgba', 'rgb16'])
def test_png_that_is_not_8bit_rgb_raises(root, mode):
    path = png_file(root, 1)
    bgr = cv2.imread(path, cv2.IMREAD_COLOR)
    png = dict(
        gray=lambda: bgr[..., 0],
        gray16=lambda: read_ids(path).astype(np.uint16),
        rgba=lambda: cv2.cvtColor(bgr, cv2.COLOR_BGR2BGRA),
        rgb16=lambda: bgr.astype(np.uint16) * 257)[mode]()
    cv2.imwrite(path, png)
    with pytest.raises(ValueError, match=re.escape(path)) as err:
        build(root)[0]  # an error in training too: not skipped
    assert '8-bit RGB' in str(err.value)
    assert 'R + 256 * G + 256**2 * B' in str(err.value)


def test_segments_info_and_png_ids_disagree(root, warnings_log):
    clean = build(root)[0]
    data = read_json(root)
    segments = data['annotations'][0]['segments_info']
    things = [i for i, s in enumerate(segments) if s['category_id'] <= 3]
    assert len(things) >= 2
    removed = segments.pop(things[1])  # its pixels: a PNG id not in JSON
    segments.insert(0, dict(id=999999, category_id=2, iscrowd=0, area=25,
                            bbox=[0, 0, 5, 5]))  # listed, not in the PNG
    write_json(root, data)
    dataset = build(root)
    result = dataset[0]
    keep = [i for i in range(len(things)) if i != 1]
    assert len(result['gt_masks']) == len(keep) == len(result['gt_bboxes'])
    assert np.array_equal(result['gt_masks'].masks, clean['gt_masks'][keep])
    assert np.array_equal(result['gt_bboxes_labels'],
                          clean['gt_bboxes_labels'][keep])
    void = read_ids(png_file(root, 1)) == removed['id']
    assert void.any() and (result['gt_seg_map'][void] == 255).all()
    assert np.array_equal(result['gt_seg_map'][~void],
                          clean['gt_seg_map'][~void])
    dataset[0]
    loader = dataset.pipeline.transforms[1]
    assert loader.counts == dict(dropped_segments=2, unknown_ids=2)
    [message] = naming(warnings_log, png_file(root, 1))
    assert '[999999]' in message and f'[{removed["id"]}]' in message


def _remap_categories(root):
    """Category ids with gaps, listed stuff first in a shuffled order."""
    new_ids = {1: 7, 2: 30, 3: 12, 4: 101, 5: 95, 6: 200}
    data = read_json(root)
    for cat in data['categories']:
        cat['id'] = new_ids[cat['id']]
    data['categories'] = [data['categories'][i] for i in (4, 1, 5, 0, 3, 2)]
    for record in data['annotations']:
        for segment in record['segments_info']:
            segment['category_id'] = new_ids[segment['category_id']]
    write_json(root, data)


def test_category_id_gaps_and_order_map_by_name(root, tmp_path,
                                                warnings_log):
    clean = shutil.copytree(root, str(tmp_path / 'clean'))
    _remap_categories(root)
    dataset = build(root)
    assert dataset.cat_ids == [7, 30, 12, 101, 95, 200]
    assert dataset.label2cat[3] == 101
    reference = build(clean)
    for i in range(len(dataset)):
        got, want = dataset[i], reference[i]
        for key in ('gt_seg_map', 'gt_bboxes_labels'):
            assert np.array_equal(got[key], want[key])
        assert np.array_equal(got['gt_masks'].masks, want['gt_masks'].masks)
    assert any('CocoPanopticMetric' in m for m in naming(warnings_log, ANN))
    # mmdet numbers the categories in the file's order: label 0, a thing
    # label for the model, would be 'ground' (id 95), a stuff class
    mmdet_dataset = build(root, cls=CocoPanopticDataset, pipeline=[])
    assert mmdet_dataset.cat2label[95] == 0
    assert dataset.cat2label == {7: 0, 30: 1, 12: 2, 101: 3, 95: 4, 200: 5}


@pytest.mark.parametrize('change, match', [
    (dict(classes=TOY_METAINFO['stuff_classes'] +
          TOY_METAINFO['thing_classes']), 'must list thing_classes first'),
    (dict(classes=TOY_METAINFO['classes'][:5] + ('lava', ),
          stuff_classes=('sky', 'ground', 'lava')), 'no category named'),
    (dict(thing_classes=('circle', 'triangle'),
          stuff_classes=('square', 'sky', 'ground', 'water')), 'isthing'),
])
def test_metainfo_that_disagrees_with_json_raises(root, change, match):
    with pytest.raises(ValueError, match=match) as err:
        build(root, metainfo=dict(TOY_METAINFO, **change))
    if match != 'must list thing_classes first':
        assert ANN in str(err.value)


def test_categories_outside_classes_are_void(root, warnings_log):
    metainfo = dict(classes=TOY_METAINFO['classes'][:5],
                    thing_classes=TOY_METAINFO['thing_classes'],
                    stuff_classes=('sky', 'ground'),
                    palette=TOY_METAINFO['palette'][:5])
    dataset = build(root, metainfo=metainfo)
    water_id = [c['id'] for c in read_json(root)['categories']
                if c['name'] == 'water'][0]
    voided = 0
    for i in range(len(dataset)):
        info = dataset.get_data_info(i)
        record = read_json(root)['annotations'][i]
        water = [s['id'] for s in record['segments_info']
                 if s['category_id'] == water_id]
        assert info['ignored_ids'] == water
        seg = dataset[i]['gt_seg_map']
        ids = read_ids(png_file(root, info['img_id']))
        assert (seg[np.isin(ids, water)] == 255).all()
        assert seg.max() <= 4 or seg.max() == 255
        voided += len(water)
    assert voided > 0
    [message] = naming(warnings_log, ANN)
    assert 'water' in message and 'void' in message
    assert not any('disagree' in m for m in warnings_log)


def _all_things_crowd(root):
    data = read_json(root)
    for record in data['annotations']:
        for segment in record['segments_info']:
            segment['iscrowd'] = int(segment['category_id'] <= 3)
    write_json(root, data)


@pytest.mark.parametrize('filter_cfg, prepare', [
    (dict(filter_empty_gt=False, min_size=1000), None),
    (dict(filter_empty_gt=True), _all_things_crowd),
])
def test_filter_to_empty_raises_naming_filter_cfg(root, filter_cfg, prepare):
    if prepare:
        prepare(root)
    with pytest.raises(ValueError, match='filter_cfg') as err:
        build(root, filter_cfg=filter_cfg)
    assert osp.join(root, ANN) in str(err.value)


def _degenerate_set(root):
    """Image 1 without segments (all void), 2 stuff only, 4 crowd only."""
    data = read_json(root)
    records = {r['image_id']: r for r in data['annotations']}
    kept = {1: lambda s: False,
            2: lambda s: s['category_id'] > 3,
            4: lambda s: s['category_id'] <= 3}
    for img_id, keep in kept.items():
        segments = [s for s in records[img_id]['segments_info'] if keep(s)]
        if img_id == 4:
            assert segments, 'toy image 4 needs things'
            for s in segments:
                s['iscrowd'] = 1
        path = png_file(root, img_id)
        ids = read_ids(path)
        write_ids(path, np.where(np.isin(ids, [s['id'] for s in segments]),
                                 ids, 0))
        records[img_id]['segments_info'] = segments
    write_json(root, data)


@pytest.fixture(scope='module')
def tiny_model():
    torch.manual_seed(0)
    model = MODELS.build(tiny_panoptic_segformer_cfg(
        num_things_classes=3, num_stuff_classes=3))
    return model


@pytest.mark.parametrize('img_ids', [(1, ), (2, ), (4, ), (1, 2, 4)],
                         ids=['no-segments', 'stuff-only', 'crowd-only',
                              'together'])
def test_degenerate_images_train_with_finite_loss(root, tiny_model, img_ids):
    _degenerate_set(root)
    dataset = build(root, pipeline=PACK)
    batch = [dataset[img_id - 1] for img_id in img_ids]
    labelled = {1: lambda s: s.new_zeros(()).bool(),
                2: lambda s: s >= 3,  # stuff only
                4: lambda s: s < 3}  # crowd pixels keep their thing label
    for img_id, sample in zip(img_ids, batch):
        assert len(sample['data_samples'].gt_instances) == 0
        sem = sample['data_samples'].gt_sem_seg.sem_seg
        assert torch.equal(sem != 255, labelled[img_id](sem) & (sem != 255))
        assert (sem != 255).any() == (img_id != 1)
    tiny_model.train()
    data = tiny_model.data_preprocessor(pseudo_collate(batch), True)
    losses = tiny_model(**data, mode='loss')
    total = sum(v for k, v in losses.items() if 'loss' in k)
    assert all(torch.isfinite(v).all() for v in losses.values())
    tiny_model.zero_grad()
    total.backward()
    grads = [p.grad for p in tiny_model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize('shape', [(8, 8), (16, 512), (512, 16), (1, 1)],
                         ids=['8x8', '16x512', '512x16', '1x1'])
def test_tiny_and_elongated_images_run_inference(tiny_model, shape):
    h, w = shape
    sample = DetDataSample(metainfo=dict(
        img_id=0, img_path='x.jpg', ori_shape=shape, img_shape=shape,
        scale_factor=(1.0, 1.0)))
    tiny_model.eval()
    with torch.no_grad():
        [result] = tiny_model.test_step(dict(
            inputs=[torch.randint(0, 256, (3, h, w), dtype=torch.uint8)],
            data_samples=[sample]))
    assert result.pred_panoptic_seg.sem_seg.shape == (1, h, w)
    if 'pred_instances' in result:
        assert result.pred_instances.masks.shape[-2:] == (h, w)
    assert math.isfinite(float(result.pred_panoptic_seg.sem_seg.sum()))


@pytest.mark.parametrize('shape', [(0, 0), (1, 1), (5, 7), (64, 48)])
def test_segment_ids_equal_numpy_unique(shape):
    rng = np.random.default_rng(0)
    # blocky maps (runs, as in real PNGs) and pixel noise
    blocks = rng.integers(0, 2**24, (4, 4))
    blocky = np.kron(blocks, np.ones((16, 16), np.int64))
    blocky = blocky[:shape[0], :shape[1]]
    noise = rng.integers(0, 50, shape)
    for ids in (blocky, noise, np.zeros(shape, np.int64)):
        assert np.array_equal(segment_ids(ids), np.unique(ids))

"""The data check before a long run: every panoptic PNG against its image as
the image loader sees it (EXIF included), from the file headers, in
parallel, all bad files listed at once; during training a mismatch that is
left is skipped with one warning and counted; testing keeps its error."""
import itertools
import logging
import os.path as osp
import shutil

import cv2
import mmcv
import numpy as np
import pytest
import torch
from mmcv.transforms import LoadImageFromFile
from mmengine.dataset import pseudo_collate
from mmengine.runner import Runner
from PIL import Image

from panseg_plugin.datasets import (PanopticSegFormerCocoPanopticDataset,
                                    PanopticSegFormerSizeMismatchError,
                                    check_panoptic_files)
from panseg_plugin.datasets.panoptic_file_check import (check_pair,
                                                        image_size_as_loaded)
from panseg_plugin.testing import tiny_panoptic_segformer_cfg
from toy_panoptic import TOY_METAINFO, make_toy_panoptic

ANN = 'annotations/panoptic_train.json'
LOAD = [dict(type='LoadImageFromFile'),
        dict(type='PanopticSegFormerLoadPanopticAnnotations')]
_RUN_IDS = itertools.count()


@pytest.fixture(scope='module')
def toy40(tmp_path_factory):
    """The issue's case: a 40-image training set."""
    root = str(tmp_path_factory.mktemp('toy40'))
    make_toy_panoptic(root, num_train=40, num_val=2, img_size=(40, 32),
                      seed=3)
    return root


@pytest.fixture
def root(toy40, tmp_path):
    dst = str(tmp_path / 'toy')
    shutil.copytree(toy40, dst)
    return dst


class Collect(logging.Handler):
    """Warnings of a logger."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def img_file(root, img_id):
    return osp.join(root, 'train', f'{img_id:06d}.jpg')


def png_file(root, img_id):
    return osp.join(root, 'annotations', 'panoptic_train', f'{img_id:06d}.png')


def set_orientation(path, value):
    exif = Image.Exif()
    exif[0x0112] = value
    Image.open(path).save(path, exif=exif.tobytes())


def shrink_png(path):
    png = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    cv2.imwrite(path, png[:20, :30])


def build(root, **kwargs):
    kwargs.setdefault('pipeline', LOAD)
    return PanopticSegFormerCocoPanopticDataset(
        data_root=root, ann_file=ANN, metainfo=TOY_METAINFO,
        data_prefix=dict(img='train/', seg='annotations/panoptic_train/'),
        filter_cfg=dict(filter_empty_gt=False), **kwargs)


def pairs_of(root, ids):
    return [(img_file(root, i), png_file(root, i)) for i in ids]


@pytest.mark.parametrize('fmt', ['.jpg', '.png', '.webp'])
@pytest.mark.parametrize('orientation', [1, 3, 6, 8])
@pytest.mark.parametrize('color_type', ['color', 'grayscale', 'unchanged',
                                        'color_ignore_orientation'])
@pytest.mark.parametrize('backend', ['cv2', 'pillow'])
def test_header_size_is_the_loaders_size(tmp_path, fmt, orientation,
                                         color_type, backend):
    path = str(tmp_path / f'img{fmt}')
    Image.fromarray(np.zeros((20, 36, 3), np.uint8)).save(path)
    set_orientation(path, orientation)
    loaded = LoadImageFromFile(color_type=color_type,
                               imdecode_backend=backend)(dict(img_path=path))
    height, width, tag = image_size_as_loaded(path, color_type, backend)
    assert (height, width) == loaded['img'].shape[:2]
    assert tag == orientation


def test_exif_transposed_image_is_named_with_its_fix(root):
    set_orientation(img_file(root, 2), 6)
    problem = check_pair(img_file(root, 2), png_file(root, 2))
    assert problem.kind == 'size'
    assert img_file(root, 2) in problem.message
    assert png_file(root, 2) in problem.message
    assert 'is 32x40 (HxW) but its image' in problem.message
    assert 'loads as 40x32' in problem.message
    assert 'EXIF orientation 6' in problem.message
    assert 'color_ignore_orientation' in problem.message
    # as the loader ignores the tag with these settings, nothing is wrong
    for color_type in ('color_ignore_orientation', 'unchanged'):
        assert check_pair(img_file(root, 2), png_file(root, 2),
                          color_type) is None


def test_every_kind_of_bad_pair(root):
    shrink_png(png_file(root, 1))
    cv2.imwrite(png_file(root, 3),
                cv2.imread(png_file(root, 3))[..., 0])  # grayscale
    cv2.imwrite(png_file(root, 4),
                cv2.imread(png_file(root, 4)).astype(np.uint16) * 257)
    with open(img_file(root, 5), 'wb') as f:
        f.write(b'not an image')
    with open(png_file(root, 6), 'wb') as f:
        f.write(b'\x89PNG')
    problems = check_panoptic_files(
        pairs_of(root, range(1, 8)) + [('nowhere.jpg', png_file(root, 7))],
        num_workers=0)
    kinds = [(p.img_path, p.kind) for p in problems]
    assert kinds == [(img_file(root, 1), 'size'),
                     (img_file(root, 3), 'png_format'),
                     (img_file(root, 4), 'png_format'),
                     (img_file(root, 5), 'unreadable'),
                     (img_file(root, 6), 'unreadable'),
                     ('nowhere.jpg', 'missing')]
    assert 'the PNG was made for another image' in problems[0].message
    assert '8-bit grayscale' in problems[1].message
    assert '16-bit RGB' in problems[2].message
    assert 'nowhere.jpg does not exist' in problems[5].message


def _write_png_variant(path, kind):
    rgb = cv2.imread(path)[..., ::-1]
    img = Image.fromarray(np.ascontiguousarray(rgb))
    if kind == 'rgb8':
        img.save(path)
    elif kind == 'palette':
        img.convert('P', palette=Image.ADAPTIVE).save(path)
    elif kind == 'palette_1bit':
        img.convert('1').convert('P').save(path, bits=1)
    elif kind == 'palette_alpha':
        img.convert('P', palette=Image.ADAPTIVE).save(path, transparency=0)
    elif kind == 'gray_alpha':
        img.convert('LA').save(path)
    elif kind == 'rgba':
        img.convert('RGBA').save(path)
    elif kind == 'rgb16':
        cv2.imwrite(path, rgb[..., ::-1].astype(np.uint16) * 257)


@pytest.mark.parametrize('kind', ['rgb8', 'palette', 'palette_1bit',
                                  'palette_alpha', 'gray_alpha', 'rgba',
                                  'rgb16'])
def test_png_format_verdict_is_the_loaders(root, kind):
    """The check flags a PNG's format exactly when the loader refuses it
    (a palette decodes to 8-bit RGB, unless it has transparency)."""
    _write_png_variant(png_file(root, 1), kind)
    problem = check_pair(img_file(root, 1), png_file(root, 1))
    dataset = build(root, test_mode=True)
    try:
        dataset[0]
        loads = True
    except ValueError as err:
        assert '8-bit RGB' in str(err)
        loads = False
    assert (problem is None) == loads, (kind, problem)
    if problem is not None:
        assert problem.kind == 'png_format'


def test_only_headers_are_read(root):
    """A JPEG cut after its header still passes: no pixel is decoded (the
    data set skips such a corrupt file in training)."""
    path = img_file(root, 2)
    noise = np.random.default_rng(0).integers(0, 255, (32, 40, 3))
    cv2.imwrite(path, noise.astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 100])
    with open(path, 'rb') as f:
        data = f.read()
    with open(path, 'wb') as f:
        f.write(data[:len(data) * 3 // 4])  # headers kept, pixels cut
    with pytest.raises(Exception):
        mmcv.imread(path).shape
    assert check_pair(path, png_file(root, 2)) is None


def test_parallel_check_equals_serial(root):
    for img_id in (3, 17, 33):
        set_orientation(img_file(root, img_id), 8)
    shrink_png(png_file(root, 21))
    pairs = pairs_of(root, range(1, 41))
    serial = check_panoptic_files(pairs, num_workers=0)
    parallel = check_panoptic_files(pairs, num_workers=2, chunk_size=7)
    assert parallel == serial
    assert [p.img_path for p in serial] == [
        img_file(root, i) for i in (3, 17, 21, 33)]


def make_runner(work_dir, root, max_iters=1, **hook_args):
    """The tiny model trained on the 40-image toy set, in file order."""
    dataset = dict(
        type='PanopticSegFormerCocoPanopticDataset', data_root=root,
        ann_file=ANN, metainfo=TOY_METAINFO,
        data_prefix=dict(img='train/', seg='annotations/panoptic_train/'),
        filter_cfg=dict(filter_empty_gt=False),
        pipeline=LOAD + [dict(type='PackDetInputs')])
    return Runner(
        model=tiny_panoptic_segformer_cfg(num_things_classes=3,
                                          num_stuff_classes=3),
        work_dir=str(work_dir),
        train_dataloader=dict(
            dataset=dataset, batch_size=2, num_workers=0,
            sampler=dict(type='InfiniteSampler', shuffle=False),
            collate_fn=dict(type='pseudo_collate')),
        optim_wrapper=dict(optimizer=dict(type='AdamW', lr=1e-4)),
        train_cfg=dict(type='IterBasedTrainLoop', max_iters=max_iters),
        custom_hooks=[dict(type='PanopticDataCheckHook', **hook_args)],
        default_hooks=dict(checkpoint=None),
        default_scope='mmdet',
        experiment_name=f'size_check{next(_RUN_IDS)}')


def test_training_stops_before_the_first_iteration_listing_all(
        root, tmp_path):
    set_orientation(img_file(root, 2), 6)
    shrink_png(png_file(root, 37))
    runner = make_runner(tmp_path, root, num_workers=2)
    with pytest.raises(ValueError) as err:
        runner.train()
    assert runner.iter == 0
    message = str(err.value)
    assert '2 of 40 image / panoptic PNG pairs would fail to load ' \
        '(2 size)' in message
    for path in (img_file(root, 2), png_file(root, 2), img_file(root, 37),
                 png_file(root, 37)):
        assert path in message
    assert 'check_files=False' in message
    listing = osp.join(str(tmp_path), 'bad_files_train.txt')
    with open(listing) as f:
        assert png_file(root, 37) in f.read()


def test_check_off_skips_the_sample_with_one_warning_and_counts_it(
        root, tmp_path):
    set_orientation(img_file(root, 2), 6)  # in the first batch
    runner = make_runner(tmp_path, root, max_iters=1, check_files=False)
    collect = Collect()
    runner.logger.addHandler(collect)  # the current logger in training
    warnings_log = collect.messages
    np.random.seed(0)
    runner.train()
    runner.logger.removeHandler(collect)
    assert runner.iter == 1
    assert runner.train_dataloader.dataset.num_skipped >= 1
    named = [m for m in warnings_log if png_file(root, 2) in m]
    assert len(named) == 1 and 'skipping training samples' in named[0]
    assert any('1 training samples skipped so far' in m
               for m in warnings_log)


def test_testing_keeps_its_error(root):
    set_orientation(img_file(root, 2), 6)
    dataset = build(root, test_mode=True)
    with pytest.raises(PanopticSegFormerSizeMismatchError) as err:
        dataset[1]
    assert isinstance(err.value, ValueError)
    assert img_file(root, 2) in str(err.value)
    assert dataset.num_skipped == 0


def test_skips_are_counted_over_data_loader_workers(root):
    for img_id in (2, 5):
        set_orientation(img_file(root, img_id), 6)
    dataset = build(root, pipeline=LOAD + [dict(type='PackDetInputs')])
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=4, num_workers=2, collate_fn=pseudo_collate)
    samples = [s for batch in loader for s in batch['data_samples']]
    assert len(samples) == 40
    assert all(s.img_id not in (2, 5) for s in samples)
    assert dataset.num_skipped >= 2  # counted in the workers

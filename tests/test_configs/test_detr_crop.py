"""The paper configs' DETR crop branch cuts the panoptic ground truth
consistently: image, thing masks, boxes and semantic map."""
import copy
import os.path as osp
import random

import numpy as np
import pytest
from mmdet.registry import DATASETS
from mmengine.config import Config
from mmengine.registry import init_default_scope

from toy_panoptic import TOY_METAINFO, make_toy_panoptic

ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
CONFIGS = {
    mode: f'configs/panoptic_segformer/panoptic-segformer_r50_8xb1-50e_{name}'
    for mode, name in (('panoptic', 'coco-panoptic.py'),
                       ('instance', 'coco.py'))
}
# Boxes are recomputed from the cut masks, then resized with the image by a
# factor of at most 800 / 384, while the masks are resized to whole pixels
# by nearest neighbour, which can drop the pixel-wide tip of a triangle
# when the last resize shrinks the crop (seen: up to 2.4% of the image
# side over 1400 draws). So a box must contain its mask (within the resize
# factor) and be tight to 3% of the image side; a box left from before the
# crop would be off by the crop offset.
BOX_ATOL = 800 / 384 + 0.5
TIGHT = 0.03


def assert_box_fits_mask(box, mask):
    """``box`` (x1, y1, x2, y2) holds the pixels of ``mask`` and is tight."""
    ys, xs = np.nonzero(mask)
    assert ys.size > 0, 'a thing without pixels was kept'
    extent = np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
    assert (box[:2] <= extent[:2] + BOX_ATOL).all(), (box, extent)
    assert (box[2:] >= extent[2:] - BOX_ATOL).all(), (box, extent)
    np.testing.assert_allclose(box, extent, atol=TIGHT * max(mask.shape))


@pytest.fixture(autouse=True)
def seeded():
    """The augmentations draw from numpy's and python's global generators:
    the same crops in every run, whatever ran before."""
    np.random.seed(0)
    random.seed(0)


NUM_THINGS = len(TOY_METAINFO['thing_classes'])


@pytest.fixture(scope='module')
def toy_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('crop'))
    make_toy_panoptic(root, num_train=6, num_val=1, img_size=(96, 80),
                      seed=4)
    return root


def crop_branch_only(pipeline):
    """The pipeline with its RandomChoice always taking the crop branch."""
    pipeline = copy.deepcopy(pipeline)
    choice = next(t for t in pipeline if t.type == 'RandomChoice')
    assert choice.transforms[1][1].type == 'RandomCrop'
    choice.prob = [0.0, 1.0]
    return pipeline


def build_dataset(mode, root):
    cfg = Config.fromfile(osp.join(ROOT, CONFIGS[mode]))
    init_default_scope('mmdet')
    dataset = cfg.train_dataloader.dataset
    dataset.update(data_root=root, pipeline=crop_branch_only(
        dataset.pipeline))
    if mode == 'panoptic':
        dataset.update(metainfo=TOY_METAINFO,
                       ann_file='annotations/panoptic_train.json',
                       data_prefix=dict(img='train/',
                                        seg='annotations/panoptic_train/'))
    else:
        dataset.update(metainfo=dict(classes=TOY_METAINFO['thing_classes']),
                       ann_file='annotations/instances_train.json',
                       data_prefix=dict(img='train/'))
    return DATASETS.build(dataset)


def test_crop_branch_is_detr_s():
    cfg = Config.fromfile(osp.join(ROOT, CONFIGS['panoptic']))
    choice = next(t for t in cfg.train_pipeline if t.type == 'RandomChoice')
    plain, cropped = choice.transforms
    assert [t.type for t in cropped] == [
        'RandomChoiceResize', 'RandomCrop', 'RandomChoiceResize'
    ]
    assert cropped[1].crop_type == 'absolute_range'
    assert tuple(cropped[1].crop_size) == (384, 600)
    assert plain[0].scales == cropped[2].scales
    assert [min(s) for s in plain[0].scales] == list(range(480, 801, 32))
    assert [min(s) for s in cropped[0].scales] == [400, 500, 600]


def test_crop_cuts_masks_seg_map_and_boxes_alike(toy_root):
    dataset = build_dataset('panoptic', toy_root)
    seen_things = 0
    for rep in range(3):
        for i in range(len(dataset)):
            sample = dataset[i]['data_samples']
            h, w = sample.img_shape
            # the crop (384-600) then resize to a shorter side of 480-800
            assert 480 <= min(h, w) <= 800 and max(h, w) <= 1333
            assert tuple(dataset[i]['inputs'].shape[1:]) != (80, 96)
            sem = sample.gt_sem_seg.sem_seg[0].numpy()
            inst = sample.gt_instances
            masks = inst.masks.masks.astype(bool)
            assert sem.shape == (h, w) and masks.shape[1:] == (h, w)
            boxes = inst.bboxes.numpy()
            labels = inst.labels.numpy()
            union = np.zeros((h, w), bool)
            for mask, box, label in zip(masks, boxes, labels):
                # boxes recomputed from the cut masks
                assert_box_fits_mask(box, mask)
                # the semantic map holds the thing's class on its mask
                assert (sem[mask] == label).all()
                assert not (union & mask).any()
                union |= mask
            # and no thing pixel of the semantic map lacks its instance
            thing_pixels = (sem < NUM_THINGS)
            np.testing.assert_array_equal(thing_pixels, union)
            seen_things += len(labels)
    assert seen_things > 0


def test_instance_config_crops_masks_and_boxes_alike(toy_root):
    dataset = build_dataset('instance', toy_root)
    for i in range(len(dataset)):
        sample = dataset[i]['data_samples']
        masks = sample.gt_instances.masks.masks.astype(bool)
        assert masks.shape[1:] == tuple(sample.img_shape)
        for mask, box in zip(masks, sample.gt_instances.bboxes.numpy()):
            assert_box_fits_mask(box, mask)

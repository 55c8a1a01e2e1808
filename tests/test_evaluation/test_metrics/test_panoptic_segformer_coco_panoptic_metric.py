"""PQ of a group (things or stuff) without any segment: mmdet's
``CocoPanopticMetric`` divides by zero in panopticapi's ``pq_average``;
:class:`PanopticSegFormerCocoPanopticMetric` reports a defined value."""
import json
import math
import os.path as osp

import numpy as np
import pytest
import torch
from mmdet.evaluation import CocoPanopticMetric
from mmdet.evaluation.functional import INSTANCE_OFFSET
from PIL import Image

from panseg_plugin.evaluation.metrics import \
    PanopticSegFormerCocoPanopticMetric

panopticapi = pytest.importorskip('panopticapi')
from panopticapi.evaluation import PQStat  # noqa: E402
from panopticapi.utils import id2rgb  # noqa: E402

H, W = 20, 24
CIRCLE = dict(id=1, name='circle', isthing=1, supercategory='shape')
SKY = dict(id=2, name='sky', isthing=0, supercategory='scene')


def _thing_ids(img_id):
    """A rectangle thing (segment id 10 + img_id) on VOID."""
    ids = np.zeros((H, W), np.int64)
    ids[4:12 + img_id, 5:15] = 10 + img_id
    return ids


def _sky_ids(img_id):
    """Sky over the whole image (segment id 20 + img_id)."""
    return np.full((H, W), 20 + img_id, np.int64)


def _write_data_set(root, categories, gt_ids, category_of):
    """COCO panoptic json + PNGs of images 1..len(gt_ids)."""
    images, annotations = [], []
    for img_id, ids in enumerate(gt_ids, start=1):
        png = f'{img_id:04d}.png'
        Image.fromarray(id2rgb(ids)).save(osp.join(root, png))
        segments = [
            dict(id=int(seg), category_id=category_of, iscrowd=0,
                 area=int((ids == seg).sum()), bbox=[0, 0, W, H])
            for seg in np.unique(ids) if seg != 0
        ]
        images.append(dict(id=img_id, file_name=f'{img_id:04d}.jpg',
                           height=H, width=W))
        annotations.append(dict(image_id=img_id, file_name=png,
                                segments_info=segments))
    ann_file = osp.join(root, 'panoptic.json')
    with open(ann_file, 'w') as f:
        json.dump(dict(images=images, annotations=annotations,
                       categories=categories), f)
    return ann_file


def _sample(img_id, pan):
    return dict(img_id=img_id, img_path=f'/nowhere/{img_id:04d}.jpg',
                ori_shape=(H, W),
                pred_panoptic_seg=dict(sem_seg=torch.from_numpy(pan)[None]))


def _evaluate(metric_type, root, ann_file, classes, thing_classes, preds,
              outfile=False, **kwargs):
    metric = metric_type(
        ann_file=ann_file, seg_prefix=str(root), nproc=1,
        outfile_prefix=osp.join(str(root), 'results') if outfile else None,
        **kwargs)
    metric.dataset_meta = dict(
        classes=classes, thing_classes=thing_classes,
        stuff_classes=tuple(c for c in classes if c not in thing_classes))
    metric.process({}, [_sample(i, p) for i, p in enumerate(preds, 1)])
    return metric.evaluate(size=len(preds))


def _things_only(tmp_path, categories):
    """Ground truth and exact predictions of one thing per image."""
    gt = [_thing_ids(i) for i in (1, 2)]
    ann_file = _write_data_set(str(tmp_path), categories, gt, CIRCLE['id'])
    preds = [np.where(ids > 0, 0 + INSTANCE_OFFSET, len(categories))
             for ids in gt]
    return ann_file, preds


@pytest.mark.parametrize('outfile', [False, True])
def test_no_stuff_segment_in_a_data_set_with_stuff_classes(
        tmp_path, outfile):
    ann_file, preds = _things_only(tmp_path, [CIRCLE, SKY])
    args = (tmp_path, ann_file, ('circle', 'sky'), ('circle', ), preds)
    with pytest.raises(ZeroDivisionError):  # mmdet 3.3 / panopticapi
        _evaluate(CocoPanopticMetric, *args, outfile=outfile)
    if outfile:
        # the files are kept by mmdet's own computation: refused clearly
        with pytest.raises(ValueError, match='without outfile_prefix'):
            _evaluate(PanopticSegFormerCocoPanopticMetric, *args,
                      outfile=outfile)
        return
    results = _evaluate(PanopticSegFormerCocoPanopticMetric, *args)
    assert results['coco_panoptic/PQ_th'] == pytest.approx(100.0)
    assert results['coco_panoptic/PQ'] == pytest.approx(100.0)  # n = 1
    for key in ('PQ_st', 'SQ_st', 'RQ_st'):
        assert results[f'coco_panoptic/{key}'] == 0.0


def test_data_set_without_stuff_classes(tmp_path):
    ann_file, preds = _things_only(tmp_path, [CIRCLE])
    results = _evaluate(PanopticSegFormerCocoPanopticMetric, tmp_path,
                        ann_file, ('circle', ), ('circle', ), preds)
    assert results['coco_panoptic/PQ'] == pytest.approx(100.0)
    assert results['coco_panoptic/PQ_st'] == 0.0


def test_stuff_only_val_set_with_empty_predictions(tmp_path):
    gt = [_sky_ids(i) for i in (1, 2)]
    ann_file = _write_data_set(str(tmp_path), [CIRCLE, SKY], gt, SKY['id'])
    preds = [np.full((H, W), 2, np.int64) for _ in gt]  # all VOID
    args = (tmp_path, ann_file, ('circle', 'sky'), ('circle', ), preds)
    with pytest.raises(ZeroDivisionError):
        _evaluate(CocoPanopticMetric, *args)
    results = _evaluate(PanopticSegFormerCocoPanopticMetric, *args)
    # All: sky is a false negative twice, PQ 0 over n = 1; Things empty.
    assert results['coco_panoptic/PQ'] == 0.0
    assert results['coco_panoptic/PQ_st'] == 0.0
    assert results['coco_panoptic/PQ_th'] == 0.0


def test_empty_group_value_nan(tmp_path):
    ann_file, preds = _things_only(tmp_path, [CIRCLE, SKY])
    results = _evaluate(PanopticSegFormerCocoPanopticMetric, tmp_path,
                        ann_file, ('circle', 'sky'), ('circle', ), preds,
                        empty_group_value=float('nan'))
    assert math.isnan(results['coco_panoptic/PQ_st'])
    assert results['coco_panoptic/PQ_th'] == pytest.approx(100.0)


def test_panopticapi_is_left_unpatched(tmp_path):
    original = PQStat.pq_average
    before = dict(vars(PQStat))
    ann_file, preds = _things_only(tmp_path, [CIRCLE, SKY])
    _evaluate(PanopticSegFormerCocoPanopticMetric, tmp_path, ann_file,
              ('circle', 'sky'), ('circle', ), preds)
    assert PQStat.pq_average is original
    assert dict(vars(PQStat)) == before


@pytest.mark.parametrize('outfile', [False, True])
def test_predictions_are_left_unchanged(tmp_path, outfile):
    """mmdet's metric writes panopticapi's VOID (0) into the prediction it
    reads on the CPU; later readers (visualisation, other metrics) would
    see void pixels as class 0. Ours reads a copy."""
    ann_file, preds = _things_only(tmp_path, [CIRCLE, SKY])
    classes = ('circle', 'sky')

    def run(metric_type):
        metric = metric_type(
            ann_file=ann_file, seg_prefix=str(tmp_path), nproc=1,
            outfile_prefix=osp.join(str(tmp_path), 'results')
            if outfile else None)
        metric.dataset_meta = dict(classes=classes, thing_classes=('circle', ),
                                   stuff_classes=('sky', ))
        samples = [_sample(i, p.copy()) for i, p in enumerate(preds, 1)]
        metric.process({}, samples)
        return [s['pred_panoptic_seg']['sem_seg'][0].numpy() for s in samples]

    # the sensitivity of this test: mmdet's metric does change them
    assert any(not np.array_equal(after, before)
               for after, before in zip(run(CocoPanopticMetric), preds))
    for after, before in zip(run(PanopticSegFormerCocoPanopticMetric), preds):
        np.testing.assert_array_equal(after, before)

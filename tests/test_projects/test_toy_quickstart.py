"""A short run of the README's main job: data, training, PQ, picture."""
import os.path as osp

import mmcv

from panseg_plugin.testing import load_script

ROOT = osp.join(osp.dirname(__file__), '..', '..')


def _quickstart():
    path = osp.join(ROOT, 'projects', 'toy_panoptic', 'quickstart.py')
    return load_script(path, 'toy_quickstart')


def test_short_quickstart_learns_and_reports(tmp_path):
    summary = _quickstart().main([
        '--data-root', str(tmp_path / 'data'), '--work-dir',
        str(tmp_path / 'work'), '--max-iters', '30', '--num-train', '24',
        '--num-val', '4', '--img-size', '96', '--num-vis', '2',
        '--pretrain-iters', '3'
    ])
    metrics = summary['metrics']
    for key in ('PQ', 'SQ', 'RQ', 'PQ_th', 'SQ_th', 'RQ_th', 'PQ_st',
                'SQ_st', 'RQ_st'):
        assert f'coco_panoptic/{key}' in metrics
    assert 'coco/segm_mAP' in metrics
    assert 0 <= metrics['sem_seg/mIoU'] <= 100  # semantic output

    losses = [loss for _, loss in summary['learning_curve']]
    assert len(losses) >= 4
    assert losses[-1] < losses[0]

    # two rows of image | ground truth | prediction, 96 px each, drawn 4x
    picture = mmcv.imread(summary['picture'])
    assert picture.shape == (2 * 4 * 96, 3 * 4 * 96, 3)
    assert osp.isfile(osp.join(tmp_path, 'work', 'quickstart',
                               'summary.json'))
    phases = summary['phases_s']
    assert set(phases) == {'data_s', 'pretrain_s', 'train_s',
                           'test_and_picture_s'}
    assert all(v >= 0 for v in phases.values())
    assert sum(phases.values()) <= summary['wall_time_s'] + 1
    # the backbone started from the weights pretrained on thing crops
    assert osp.isfile(osp.join(tmp_path, 'work', 'pretrain',
                               'r18-tiny_things.pth'))

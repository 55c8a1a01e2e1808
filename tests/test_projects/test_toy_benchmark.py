"""The equal-budget comparison with mmdet's Mask2Former runs end to end."""
import json
import os.path as osp

import pytest

from panseg_plugin.testing import load_script

ROOT = osp.join(osp.dirname(__file__), '..', '..')


def _benchmark():
    path = osp.join(ROOT, 'projects', 'toy_panoptic',
                    'benchmark_mask2former.py')
    return load_script(path, 'toy_benchmark')


def test_both_models_train_on_the_same_budget_and_are_compared(
        tmp_path, capsys):
    work_dir = tmp_path / 'work'
    results = _benchmark().main([
        '--data-root', str(tmp_path / 'data'), '--work-dir', str(work_dir),
        '--max-iters', '2', '--num-train', '8', '--num-val', '2',
        '--img-size', '64', '--pretrain-iters', '2'
    ])
    assert list(results) == ['panoptic_segformer', 'mask2former']
    for result in results.values():
        assert result['iters'] == 2
        for key in ('PQ', 'PQ_th', 'PQ_st', 'SQ', 'RQ'):
            assert 0.0 <= result[key] <= 100.0
        assert result['params_m'] > 0 and result['train_s'] > 0
    # the two models are different networks of the same size class
    ours, m2f = (results[k]['params_m']
                 for k in ('panoptic_segformer', 'mask2former'))
    assert ours != m2f and 0.2 < ours / m2f < 5

    out = capsys.readouterr().out
    assert 'ratio ours/m2f' in out
    with open(work_dir / 'benchmark.json') as f:
        saved = json.load(f)
    assert saved['results']['mask2former']['PQ'] == pytest.approx(
        results['mask2former']['PQ'])

"""``tools/test.py --tta`` with the toy config's ``tta_model`` and
``tta_pipeline`` (flip x 3 scales) end to end.

``tools/test.py --tta`` wraps the model as mmdet does
(``cfg.model = ConfigDict(**cfg.tta_model, module=cfg.model)``, the test
data set's pipeline replaced by ``cfg.tta_pipeline``).
"""
import glob
import json
import os.path as osp
import subprocess
import sys
from unittest import mock

import pytest
import torch
from mmengine.config import Config

from panseg_plugin.models.test_time_augs import PanopticSegFormerTTAModel
from panseg_plugin.testing import load_script, untrained_model

REPO_ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..', '..', '..'))
TEST_TOOL = osp.join(REPO_ROOT, 'tools', 'test.py')
TOY_CONFIG = osp.join(REPO_ROOT, 'projects', 'toy_panoptic', 'configs',
                      'panoptic-segformer_r18-tiny_toy-panoptic.py')


def load_test_tool():
    return load_script(TEST_TOOL, 'panseg_test_tool')


@pytest.fixture(scope='module')
def toy(tmp_path_factory):
    """Two 64 x 64 toy validation images and an untrained checkpoint of the
    toy config's model."""
    root = tmp_path_factory.mktemp('tta')
    data = str(root / 'toy')
    subprocess.run([
        sys.executable,
        osp.join(REPO_ROOT, 'tools', 'dataset_converters',
                 'make_toy_panoptic.py'), data, '--num-train', '1',
        '--num-val', '2', '--img-size', '64', '--seed', '4'
    ], check=True, capture_output=True, timeout=120)
    ckpt = str(root / 'toy.pth')
    model = untrained_model(Config.fromfile(TOY_CONFIG))
    torch.save(dict(state_dict=model.state_dict()), ckpt)
    ann = osp.join(data, 'annotations')
    options = [
        f'test_dataloader.dataset.data_root={data}/',
        'test_dataloader.batch_size=2', 'test_dataloader.num_workers=0',
        'test_dataloader.persistent_workers=False',
        f'test_evaluator.0.ann_file={ann}/panoptic_val.json',
        f'test_evaluator.0.seg_prefix={ann}/panoptic_val/',
        f'test_evaluator.1.ann_file={ann}/instances_val.json'
    ]
    return dict(checkpoint=ckpt, options=options, root=root)


def test_toy_config_declares_flip_at_three_scales():
    cfg = Config.fromfile(TOY_CONFIG)
    assert cfg.tta_model.type == 'PanopticSegFormerTTAModel'
    tta = cfg.tta_pipeline[-1]
    assert tta.type == 'TestTimeAug'
    assert [t.type for t in tta.transforms[0]] == ['Resize'] * 3
    assert [t.prob for t in tta.transforms[1]] == [1.0, 0.0]
    assert {'flip', 'flip_direction'} <= set(tta.transforms[-1][0].meta_keys)


def test_tools_test_with_tta_runs_end_to_end(toy, tmp_path):
    """The checkpoint loads strictly into the wrapped model (a missing key
    would fail the run), and every image is predicted in 6 views."""
    tool = load_test_tool()
    work_dir = str(tmp_path / 'work')
    predict_view = PanopticSegFormerTTAModel._predict_view
    with mock.patch.object(PanopticSegFormerTTAModel, '_predict_view',
                           autospec=True, side_effect=predict_view) as views:
        tool.main([TOY_CONFIG, toy['checkpoint'], '--tta', '--work-dir',
                   work_dir, '--cfg-options', *toy['options']])
    # one batch of 2 images, 3 scales x (flip, no flip)
    assert views.call_count == 6
    flips = [call.args[1]['data_samples'][0].flip
             for call in views.call_args_list]
    assert flips == [True, False] * 3
    logs = glob.glob(osp.join(work_dir, '*', '*.json'))
    assert len(logs) == 1, logs
    with open(logs[0]) as f:
        metrics = json.load(f)
    for key in ('coco_panoptic/PQ', 'coco_panoptic/PQ_th',
                'coco_panoptic/PQ_st', 'coco/segm_mAP'):
        assert key in metrics, sorted(metrics)
        assert 0 <= float(metrics[key]) <= 100

"""A checkpoint that does not fit the config's model: mmengine only prints
the mismatch and evaluates anyway; ``tools/test.py`` refuses it and names
the keys (``--non-strict`` logs them and evaluates)."""
import glob
import os.path as osp

import pytest
import torch
from mmengine.runner import Runner
from toy_training import (load_tool, make_tiny_toy, single_thread,
                          toy_train_cfg, unformatted_config_text)

RENAMED = ('bbox_head.cls_branch.weight', 'bbox_head.cls_head.weight')
DROPPED = 'level_embed'
EXTRA = 'neck.extra_conv.weight'
RESHAPED = 'query_embedding.weight'


@pytest.fixture(scope='module')
def toy(tmp_path_factory):
    return make_tiny_toy(tmp_path_factory.mktemp('toy_keys'), num_val=2)


@pytest.fixture(scope='module')
def test_tool():
    return load_tool('test')


@pytest.fixture(scope='module')
def setup(toy, tmp_path_factory):
    """(config file, matching checkpoint, mismatching checkpoint)."""
    root = tmp_path_factory.mktemp('keys')
    cfg = toy_train_cfg(toy['data_root'])
    cfg_file = str(root / 'tiny_toy.py')
    with unformatted_config_text():
        cfg.dump(cfg_file)
    model_cfg = cfg.model.copy()
    with single_thread():
        from mmdet.registry import MODELS
        model = MODELS.build(model_cfg)
        model.init_weights()
    good = dict(model.state_dict())
    bad = dict(good)
    bad[RENAMED[1]] = bad.pop(RENAMED[0])
    del bad[DROPPED]
    bad[EXTRA] = torch.zeros(1)
    bad[RESHAPED] = torch.zeros(3, 7)
    paths = []
    for name, state_dict in (('good', good), ('bad', bad)):
        path = str(root / f'{name}.pth')
        torch.save(dict(meta=dict(), state_dict=state_dict), path)
        paths.append(path)
    return (cfg_file, *paths)


def _run_test_tool(test_tool, tmp_path, name, cfg_file, ckpt, *args):
    with single_thread(), unformatted_config_text():
        return test_tool.main([
            cfg_file, ckpt, '--work-dir', str(tmp_path), *args,
            '--cfg-options', f'experiment_name={name}'
        ])


def test_mmengine_only_prints_the_mismatch(setup, tmp_path, capsys):
    cfg_file, _, bad = setup
    from mmengine.config import Config
    cfg = Config.fromfile(cfg_file)
    cfg.work_dir = str(tmp_path)
    cfg.experiment_name = 'keys_mmengine'
    runner = Runner.from_cfg(cfg)
    runner.load_checkpoint(bad)  # strict=False: no error
    out = capsys.readouterr().out
    assert 'missing keys in source state_dict' in out
    assert RENAMED[0] in out and RENAMED[1] in out and EXTRA in out


def test_test_tool_refuses_and_names_the_keys(setup, test_tool, tmp_path):
    cfg_file, _, bad = setup
    with pytest.raises(RuntimeError) as info:
        _run_test_tool(test_tool, tmp_path, 'keys_strict', cfg_file, bad)
    message = str(info.value)
    assert 'does not match the model' in message
    assert 'unexpected key in source state_dict' in message
    assert 'missing keys in source state_dict' in message
    for key in (*RENAMED, DROPPED, EXTRA):
        assert key in message
    assert f'size mismatch for {RESHAPED}' in message
    assert '--non-strict' in message
    assert 'num_batches_tracked' not in message


def test_test_tool_non_strict_logs_the_keys_and_evaluates(
        setup, test_tool, tmp_path):
    cfg_file, _, bad = setup
    _run_test_tool(test_tool, tmp_path, 'keys_lenient', cfg_file, bad,
                   '--non-strict')
    (log, ) = glob.glob(osp.join(str(tmp_path), '*', '*.log'))
    with open(log) as f:
        text = f.read()
    assert 'missing keys in source state_dict' in text
    assert RENAMED[1] in text and EXTRA in text
    assert 'coco_panoptic/PQ' in text


def test_test_tool_accepts_a_matching_checkpoint(setup, test_tool,
                                                 tmp_path):
    cfg_file, good, _ = setup
    _run_test_tool(test_tool, tmp_path, 'keys_good', cfg_file, good)
    (log, ) = glob.glob(osp.join(str(tmp_path), '*', '*.log'))
    with open(log) as f:
        text = f.read()
    assert 'missing keys in source state_dict' not in text
    assert 'coco_panoptic/PQ' in text

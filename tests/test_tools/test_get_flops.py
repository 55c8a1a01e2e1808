"""tools/analysis_tools/get_flops.py on a tiny config."""
import copy
from pathlib import Path

import pytest
import torch
from mmdet.registry import MODELS
from mmengine.config import Config

from panseg_plugin.testing import load_script, tiny_panoptic_segformer_cfg

TOOL = Path(__file__).parents[2] / 'tools' / 'analysis_tools' / 'get_flops.py'


@pytest.fixture(autouse=True)
def one_thread():
    """2 shared cores: one thread avoids OpenMP spin-waiting."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _load_tool():
    return load_script(TOOL, 'get_flops')


def test_complexity_of_tiny_config():
    complexity = _load_tool().complexity
    model_cfg = tiny_panoptic_segformer_cfg()
    # (mmdet's DeformableDETR writes into the head config it is given)
    expected_params = sum(
        p.numel() for p in MODELS.build(copy.deepcopy(model_cfg)).parameters())

    params, flops, table = complexity(Config(dict(model=model_cfg)), 64, 96)
    assert params == expected_params
    assert flops > 0

    # FLOPs grow with the input, parameters do not
    params_big, flops_big, _ = complexity(Config(dict(model=model_cfg)), 128,
                                          96)
    assert params_big == params
    assert flops_big > flops


def test_command_line_prints_params_and_flops(tmp_path, capsys):
    config = tmp_path / 'tiny.py'
    Config(dict(model=tiny_panoptic_segformer_cfg())).dump(str(config))
    params, flops = _load_tool().main([str(config), '--shape', '64'])
    out = capsys.readouterr().out
    assert 'Input shape: (3, 64, 64)' in out
    assert f'Params: {params / 1e6:.2f}M' in out and flops > 0

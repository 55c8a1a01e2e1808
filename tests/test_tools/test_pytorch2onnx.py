"""``tools/deployment/pytorch2onnx.py``: export of the tiny model and
onnxruntime parity."""
import importlib.util
import json
import os.path as osp
import subprocess
import sys

import pytest
import torch
from mmengine.config import Config

from panseg_plugin.testing import (load_script, tiny_panoptic_segformer_cfg,
                                   untrained_model)

REPO_ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
TOOL = osp.join(REPO_ROOT, 'tools', 'deployment', 'pytorch2onnx.py')
HAVE_ORT = all(
    importlib.util.find_spec(name) is not None
    for name in ('onnx', 'onnxruntime'))
needs_ort = pytest.mark.skipif(
    not HAVE_ORT, reason='onnx and onnxruntime are optional: pip install -r '
    'requirements/optional.txt')


def load_tool():
    return load_script(TOOL, 'panseg_pytorch2onnx')


@pytest.fixture(scope='module')
def tiny(tmp_path_factory):
    """A config file of the tiny model (3 levels, 10 queries, 3 + 2
    classes) and a checkpoint of it, its class and mask layers scaled up so
    that maps hold several segments."""
    root = tmp_path_factory.mktemp('export')
    cfg = Config(dict(model=tiny_panoptic_segformer_cfg(),
                      default_scope='mmdet'))
    config = str(root / 'tiny.py')
    cfg.dump(config)
    model = untrained_model(Config.fromfile(config))
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for layer in (model.bbox_head.mask_branch, model.bbox_head.cls_branch):
            layer.weight.copy_(
                torch.randn(layer.weight.shape, generator=generator) * 0.5)
    ckpt = str(root / 'tiny.pth')
    torch.save(dict(state_dict=model.state_dict()), ckpt)
    return dict(config=config, checkpoint=ckpt, model=model.eval())


@needs_ort
def test_export_and_parity_of_the_tiny_model(tiny, tmp_path):
    import onnx
    out, report_file = str(tmp_path / 'tiny.onnx'), str(tmp_path / 'r.json')
    report = load_tool().main([
        tiny['config'], tiny['checkpoint'], '--shape', '64', '96', '--out',
        out, '--runs', '1', '--report', report_file])
    assert report['ok']
    assert list(report['parity']) == ['export input', 'batch of 2']
    for name, batch in (('export input', 1), ('batch of 2', 2)):
        parity = report['parity'][name]
        assert sorted(parity) == ['cls_scores', 'loc_preds', 'mask_preds']
        # (B, N, C), (B, N, H / 8, W / 8), (B, N, 3)
        assert parity['cls_scores']['shape'] == (batch, 10, 5)
        assert parity['mask_preds']['shape'] == (batch, 10, 8, 12)
        assert parity['loc_preds']['shape'] == (batch, 10, 3)
        for r in parity.values():
            assert r['ok'] and r['max_abs'] < 1e-4
    latency = report['latency']
    assert latency['pytorch_ms'] > 0 and latency['onnxruntime_ms'] > 0
    with open(report_file) as f:
        assert json.load(f)['ok'] is True

    graph = onnx.load(out)
    assert max(o.version for o in graph.opset_import
               if o.domain in ('', 'ai.onnx')) >= 16
    ops = {node.op_type for node in graph.graph.node}
    # deformable attention on mmcv's pure-PyTorch path: no custom op
    assert 'GridSample' in ops
    assert all(o.domain in ('', 'ai.onnx') for o in graph.opset_import)
    batch_dim = graph.graph.input[0].type.tensor_type.shape.dim[0]
    assert batch_dim.dim_param == 'batch'


@needs_ort
def test_onnx_outputs_give_the_pytorch_panoptic_map(tiny, tmp_path):
    """Post-processing of the ONNX outputs is the fusion head's."""
    tool = load_tool()
    utils = tool.onnx_utils
    out = str(tmp_path / 'tiny.onnx')
    tool.main([tiny['config'], tiny['checkpoint'], '--shape', '64', '64',
               '--out', out, '--skip-check'])
    model = tiny['model']
    image = torch.randint(0, 256, (3, 64, 64), dtype=torch.uint8,
                          generator=torch.Generator().manual_seed(0))
    from mmdet.structures import DetDataSample
    sample = DetDataSample(metainfo=dict(img_shape=(64, 64),
                                         ori_shape=(64, 64),
                                         scale_factor=(1.0, 1.0)))
    with torch.no_grad():
        data = model.data_preprocessor(
            dict(inputs=[image], data_samples=[sample]), False)
        expected = model.predict(data['inputs'], data['data_samples'])
    outs = utils.run_session(utils.create_session(out), data['inputs'])
    got = model.panoptic_fusion_head.predict(
        outs['cls_scores'], outs['mask_preds'], data['data_samples'],
        rescale=True)
    pan = expected[0].pred_panoptic_seg.sem_seg
    assert len(pan.unique()) >= 3
    assert torch.equal(got[0]['pan_results'].sem_seg, pan)
    assert torch.equal(got[0]['ins_results'].masks,
                       expected[0].pred_instances.masks)


@needs_ort
def test_script_exits_zero_on_random_weights(tiny, tmp_path):
    out = str(tmp_path / 'random.onnx')
    proc = subprocess.run(
        [sys.executable, TOOL, tiny['config'], '--shape', '64', '128',
         '--out', out, '--runs', '1', '--static-batch'],
        capture_output=True, text=True, cwd=str(tmp_path), timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'weights: random' in proc.stdout
    assert 'max abs' in proc.stdout and 'FAIL' not in proc.stdout
    assert 'onnxruntime' in proc.stdout.split('latency')[-1]
    assert osp.isfile(out)


@needs_ort
def test_latency_of_a_config_in_one_call(tiny):
    utils = load_tool().onnx_utils
    result = utils.measure_onnx_latency(Config.fromfile(tiny['config']),
                                        (64, 64), warmup=0, runs=1)
    assert sorted(result) == ['max_abs', 'onnxruntime_ms', 'pytorch_ms',
                              'speedup', 'torch_threads']
    assert result['max_abs'] < 1e-4
    assert result['speedup'] == pytest.approx(
        result['pytorch_ms'] / result['onnxruntime_ms'])


def test_parity_fails_outside_the_tolerance():
    utils = load_tool().onnx_utils
    reference = dict(a=torch.tensor([1.0, -2.0, 0.0]))
    report = utils.compare_outputs(
        reference, dict(a=torch.tensor([1.0, -2.01, 1e-5])), atol=1e-4,
        rtol=1e-3)
    assert not report['a']['ok']
    assert report['a']['max_abs'] == pytest.approx(0.01, rel=1e-5)
    assert report['a']['max_rel'] == pytest.approx(10.0, rel=1e-3)
    assert 'FAIL' in utils.format_parity(report, 1e-4, 1e-3)
    assert utils.compare_outputs(
        reference, dict(a=torch.tensor([1.0, -2.001, 0.0])), atol=1e-4,
        rtol=1e-3)['a']['ok']
    with pytest.raises(ValueError, match='differs from PyTorch'):
        utils.compare_outputs(reference, dict(a=torch.zeros(2)), 1, 1)


@pytest.mark.parametrize('argv, message', [
    (['c.py', '--shape', '64', '64', '--out', 'm.onnx', '--opset', '15'],
     '--opset must be >= 16'),
    (['c.py', '--shape', '64', '64', '--out', 'm.pth'], '.onnx'),
    (['c.py', '--shape', '64', '64', '--out', 'm.onnx', '--batch-size',
      '0'], '--batch-size'),
])
def test_bad_arguments_are_refused(argv, message, capsys):
    with pytest.raises(SystemExit):
        load_tool().parse_args(argv)
    assert message in capsys.readouterr().err


@needs_ort
def test_feature_levels_of_side_one_are_refused(tiny, tmp_path):
    # 32 x 64: the stride-32 level is 1 x 2
    with pytest.raises(ValueError, match='at least 64'):
        load_tool().main([tiny['config'], '--shape', '32', '64', '--out',
                          str(tmp_path / 'x.onnx')])
    assert not osp.exists(str(tmp_path / 'x.onnx'))


def test_shape_must_fit_the_pad_size_divisor():
    utils = load_tool().onnx_utils
    assert utils.check_shape([64, 96], 32) == (64, 96)
    with pytest.raises(ValueError, match='pad_size_divisor'):
        utils.check_shape([64, 90], 32)


def test_the_plugin_imports_without_onnx():
    code = ('import sys; sys.modules["onnx"] = None; '
            'sys.modules["onnxruntime"] = None; import panseg_plugin; '
            'import importlib.util as u; '
            f's = u.spec_from_file_location("t", {TOOL!r}); '
            'm = u.module_from_spec(s); s.loader.exec_module(m); '
            'print("imported")')
    proc = subprocess.run([sys.executable, '-c', code], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert 'imported' in proc.stdout
    code = code.replace('print("imported")',
                        'm.onnx_utils.import_onnxruntime()')
    proc = subprocess.run([sys.executable, '-c', code], capture_output=True,
                          text=True, timeout=120)
    assert 'requirements/optional.txt' in proc.stderr

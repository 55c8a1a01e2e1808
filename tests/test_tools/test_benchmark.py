"""tools/analysis_tools/benchmark.py on tiny models."""
import importlib.util
import math
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.logging import MMLogger

from panseg_plugin.testing import load_script, tiny_panoptic_segformer_cfg

TOOL = Path(__file__).parents[2] / 'tools' / 'analysis_tools' / 'benchmark.py'
DDETR = 'mmdet::deformable_detr/deformable-detr_r50_16xb2-50e_coco.py'


@pytest.fixture(autouse=True)
def one_thread():
    """2 shared cores: OpenMP threads spin-waiting on a loaded machine make
    tiny models 10-100x slower; one thread is fast and deterministic."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _load_tool():
    return load_script(TOOL, 'benchmark')


@pytest.fixture(scope='module')
def tool():
    # init_weights logs through mmengine's logger; create it now so that its
    # stream handler is not bound to a capsys stream closed after one test.
    MMLogger.get_current_instance()
    return _load_tool()


def tiny_ddetr_cfg(tool):
    """mmdet's Deformable DETR config, shrunk: ResNet-18 with 16 base
    channels, 1 encoder and 1 decoder layer, 10 queries."""
    return tool.load_config(DDETR, {
        'model.backbone.depth': 18,
        'model.backbone.base_channels': 16,
        'model.neck.in_channels': [32, 64, 128],
        'model.encoder.num_layers': 1,
        'model.decoder.num_layers': 1,
        'model.num_queries': 10,
    })


def test_class_counts_asked_from_the_built_models(tool):
    ours = tool.build_model(Config(dict(model=tiny_panoptic_segformer_cfg())))
    assert tool.class_counts(ours) == (3, 2)
    ddetr = tool.build_model(tiny_ddetr_cfg(tool))
    assert tool.class_counts(ddetr) == (80, 0)


def test_peak_memory_measures_an_allocation(tool):
    def step():
        block = torch.ones(64, 2**20, dtype=torch.uint8)  # 64 MiB, written
        step.total = block.numel()

    peak, method = tool.peak_memory(step, 'cpu')
    assert step.total == 64 * 2**20
    assert method.startswith('cpu')
    if 'before the step' in method:  # Linux /proc: the allocation is seen
        assert 60 * 2**20 < peak < 100 * 2**20


def test_synthetic_sample_ground_truth(tool):
    sample = tool.synthetic_sample((64, 48), 3, 2, with_gt=True)
    data_sample = sample['data_samples'][0]
    assert tuple(sample['inputs'][0].shape) == (3, 64, 48)
    assert len(data_sample.gt_instances) == 3
    assert set(data_sample.gt_sem_seg.sem_seg.unique().tolist()) <= {3, 4,
                                                                     255}
    bare = tool.synthetic_sample((64, 48), 3, 2, with_gt=False)
    assert 'gt_instances' not in bare['data_samples'][0]


def test_benchmark_tiny_ours_vs_tiny_deformable_detr(tool, tmp_path, capsys):
    ours = tmp_path / 'tiny_ours.py'
    Config(dict(model=tiny_panoptic_segformer_cfg())).dump(str(ours))
    baseline = tiny_ddetr_cfg(tool)
    baseline_path = tmp_path / 'tiny_ddetr.py'
    baseline.dump(str(baseline_path))

    results = tool.main([
        str(ours), '--baselines', str(baseline_path), '--shape', '64', '64',
        '--warmup', '1', '--runs', '2'])

    names = list(results)
    assert names == ['PanopticSegFormer (tiny_ours)',
                     'DeformableDETR (tiny_ddetr)']
    common = {'params', 'latency_ms', 'fps', 'train_step_s', 'train_ips',
              'train_mem_mb', 'mem_method'}
    assert set(results[names[0]]) == common
    assert set(results[names[1]]) == common | {'latency_ratio', 'mem_ratio'}
    for r in results.values():
        for key in ('params', 'latency_ms', 'fps', 'train_step_s'):
            assert r[key] > 0 and math.isfinite(r[key]), key
        assert r['train_mem_mb'] >= 0
        assert math.isclose(r['train_ips'], 1.0 / r['train_step_s'])
    assert math.isclose(results[names[0]]['fps'],
                        1e3 / results[names[0]]['latency_ms'])
    assert math.isclose(
        results[names[1]]['latency_ratio'],
        results[names[0]]['latency_ms'] / results[names[1]]['latency_ms'])

    out = capsys.readouterr().out
    assert 'input 1x3x64x64' in out
    assert 'latency ours/this' in out and 'mem ours/this' in out
    for name in names:
        assert name in out


def test_benchmark_skip_train_has_latency_only(tool):
    cfg = Config(dict(model=tiny_panoptic_segformer_cfg()))
    results = tool.run_benchmark([('a', cfg), ('b', cfg)], (64, 64),
                                 warmup=0, runs=1, train=False)
    assert set(results['a']) == {'params', 'latency_ms', 'fps'}
    assert set(results['b']) == {'params', 'latency_ms', 'fps',
                                 'latency_ratio'}
    assert results['a']['params'] == results['b']['params'] > 0
    table = tool.format_table(results)
    assert 'train' not in table


@pytest.mark.skipif(
    importlib.util.find_spec('onnxruntime') is None
    or importlib.util.find_spec('onnx') is None,
    reason='onnx / onnxruntime not installed (requirements/optional.txt)')
def test_onnx_latency_of_the_tiny_model(tool):
    cfg = Config(dict(model=tiny_panoptic_segformer_cfg()))
    onnx = tool.onnx_latency(cfg, (64, 96), warmup=0, runs=1, seed=0)
    assert onnx['pytorch_ms'] > 0 and onnx['onnxruntime_ms'] > 0
    assert onnx['speedup'] == pytest.approx(
        onnx['pytorch_ms'] / onnx['onnxruntime_ms'], rel=1e-3)
    assert onnx['max_abs'] < 1e-4


def test_stages_time_every_stage_and_count_its_flop(tool, capsys):
    stages = tool._load_tool('benchmark_stages.py')
    cfg = Config(dict(model=tiny_panoptic_segformer_cfg()))
    out = stages.report(cfg, (64, 96), runs=1, trained_like=3)
    assert set(out['times']) == set(stages.STAGES)
    assert all(ms > 0 for ms in out['times'].values())
    assert set(out['flops']) == set(stages.STAGES)
    for name in ('backbone + neck', 'encoder', 'location decoder',
                 'mask decoder'):
        assert out['flops'][name] > 0, name
    assert out['ceiling_gflops'] > 0
    printed = capsys.readouterr().out
    assert 'matmul ceiling' in printed and 'mask decoder' in printed


def test_trained_like_scores_pass_exactly_k_queries(tool):
    stages = tool._load_tool('benchmark_stages.py')
    logits = torch.randn(2, 10, 5)
    forced = stages._trained_like(logits, 4).sigmoid()
    passing = (forced > 0.5).sum(-1)
    assert passing[:, :4].eq(1).all() and passing[:, 4:].eq(0).all()
    # the passing class is each query's own best class
    assert torch.equal(forced[:, :4].argmax(-1), logits[:, :4].argmax(-1))


def test_flop_count_includes_the_fused_cpu_attention(tool):
    stages = tool._load_tool('benchmark_stages.py')
    q, k, v = torch.randn(2, 4, 10, 8), torch.randn(2, 4, 30, 8), \
        torch.randn(2, 4, 30, 8)
    with torch.utils.flop_counter.FlopCounterMode(
            display=False,
            custom_mapping=stages.EXTRA_FLOP_FORMULAS) as counter:
        torch.nn.functional.scaled_dot_product_attention(q, k, v)
    # two products of 2 x 4 x 10 x 30 x 8 multiply-adds, 2 FLOP each
    assert counter.get_total_flops() == 2 * 2 * (2 * 4 * 10 * 30 * 8)


def test_latency_runs_are_interleaved(tool, monkeypatch):
    calls = []
    seconds = iter(range(1, 100))

    def fake_latency(model, shape, device='cpu', seed=0):
        calls.append(model.tag)
        return float(next(seconds))

    def fake_build(cfg, device='cpu', seed=0):
        model = torch.nn.Linear(2, 2)
        model.tag = cfg.tag
        return model

    monkeypatch.setattr(tool, 'latency_s', fake_latency)
    monkeypatch.setattr(tool, 'build', fake_build)
    configs = [(tag, Config(dict(tag=tag))) for tag in 'ab']
    results = tool.run_benchmark(configs, (8, 8), warmup=1, runs=3,
                                 train=False)
    assert calls == list('ab' * 4)
    # medians of the runs after the warm-up: a 3, 5, 7 and b 4, 6, 8
    assert results['a']['latency_ms'] == 5e3
    assert results['b']['latency_ms'] == 6e3
    assert results['b']['latency_ratio'] == 5 / 6

"""Inference latency and training memory against mmdet baselines (Table 4).

Measures, in one process on one device, a config's model and the baselines
(mmdet's Deformable DETR R50 and Mask2Former R50 panoptic by default):

* inference latency: ``model.test_step`` (preprocessing, forward and
  post-processing, no data loading) on one synthetic image of ``--shape``
  (batch 1), ``--warmup`` runs discarded, the median of ``--runs``; the
  models' runs interleaved, so that a machine whose speed drifts over
  minutes shifts them alike;
* one training step (``model.train_step``: forward, losses, backward and the
  config's optimizer step, the first one, so the optimizer state is
  allocated in it) on a synthetic panoptic sample (3 things, 2 stuff
  regions), its time and peak memory:
    - CUDA: ``torch.cuda.max_memory_allocated`` during the step, absolute
      (weights included), as mmdet logs it and the paper reports it;
    - CPU: the peak resident set size during the step minus the resident
      size before it, i.e. what the step adds to the loaded model (Linux:
      ``VmHWM`` reset through ``/proc/self/clear_refs``); elsewhere, or
      where the reset is refused, the growth of the process's lifetime peak
      (a lower bound), and the table says so (:func:`peak_memory`).

Weights are random (``init_weights`` with every ``Pretrained`` init
removed, nothing is downloaded). The results of random weights differ from a
trained model's, which affects post-processing time only (e.g. how many
queries pass the score threshold). Fixed-size batch augmentations
(Mask2Former's 1024x1024 LSJ padding) are removed so that every model sees
the same input size.

    python tools/analysis_tools/benchmark.py CONFIG [--shape 800 1216] \\
        [--device cpu] [--warmup 2] [--runs 5] [--skip-train] \\
        [--baselines CFG ...] [--threads N] [--onnx]

``--onnx`` adds the network's latency (no pre- or post-processing) in
PyTorch and in onnxruntime for the config's model.
"""
import argparse
import contextlib
import copy
import ctypes
import gc
import logging
import os.path as osp
import re
import statistics
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
from mmengine.config import Config, DictAction
from mmengine.logging import MMLogger
from mmengine.optim import build_optim_wrapper

import panseg_plugin  # noqa: F401  (registers the plugin's classes)
from panseg_plugin.testing import demo_panoptic_batch
from panseg_plugin.utils import build_model, load_config, load_script

DEFAULT_BASELINES = (
    'mmdet::deformable_detr/deformable-detr_r50_16xb2-50e_coco.py',
    'mmdet::mask2former/mask2former_r50_8xb2-lsj-50e_coco-panoptic.py',
)
DEFAULT_OPTIM = dict(type='OptimWrapper',
                     optimizer=dict(type='AdamW', lr=1e-4, weight_decay=1e-4))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Latency and training memory vs mmdet baselines')
    parser.add_argument('config', help='config of the model to measure')
    parser.add_argument('--baselines', nargs='*', default=DEFAULT_BASELINES,
                        help='configs to compare with (paths or mmdet::...)')
    parser.add_argument('--shape', type=int, nargs=2, default=[800, 1216],
                        metavar=('H', 'W'), help='input height and width')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--warmup', type=int, default=2,
                        help='inference runs discarded')
    parser.add_argument('--runs', type=int, default=5,
                        help='timed inference runs (median reported)')
    parser.add_argument('--stages', action='store_true',
                        help='also time our model stage by stage and '
                        'count its FLOP (benchmark_stages.py)')
    parser.add_argument('--trained-like', type=int, default=50,
                        help='with --stages: queries given a passing score '
                        'before post-processing (random weights keep none)')
    parser.add_argument('--skip-train', action='store_true',
                        help='do not run the training step')
    parser.add_argument('--threads', type=int, default=None,
                        help='torch CPU threads (default: torch\'s choice); '
                        'on a loaded machine 1 avoids OpenMP spin-waiting')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--onnx', action='store_true',
                        help='also time the network (no pre- or '
                        'post-processing) in PyTorch and onnxruntime, CPU '
                        '(needs onnx and onnxruntime)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override keys of CONFIG (not the baselines)')
    return parser.parse_args(argv)


def class_counts(model) -> Tuple[int, int]:
    """(things, stuff) classes of a built detector: its panoptic fusion
    head's (Panoptic SegFormer, Mask2Former, Panoptic FPN), else
    ``bbox_head.num_classes`` things and no stuff (detectors)."""
    fusion = getattr(model, 'panoptic_fusion_head', None)
    if fusion is not None:
        return fusion.num_things_classes, fusion.num_stuff_classes
    return model.bbox_head.num_classes, 0


def synthetic_sample(shape: Sequence[int], num_things_classes: int,
                     num_stuff_classes: int, with_gt: bool,
                     seed: int = 0) -> dict:
    """One image of ``shape`` as the data preprocessor takes it; with
    ground truth (3 rectangles, up to 2 stuff regions) for training."""
    stuff = tuple(range(num_things_classes,
                        num_things_classes + min(2, num_stuff_classes)))
    batch = demo_panoptic_batch(
        image_shapes=(tuple(shape), ), num_things=(3, ),
        stuff_labels=(stuff, ), num_things_classes=num_things_classes,
        seed=seed)
    if not with_gt:
        for sample in batch['data_samples']:
            del sample.gt_instances
            del sample.gt_sem_seg
    return batch


def _sync(device: str) -> None:
    if device.startswith('cuda'):
        torch.cuda.synchronize(device)


def _status_kb(key: str) -> int:
    with open('/proc/self/status') as f:
        return int(re.search(rf'^{key}:\s+(\d+) kB', f.read(), re.M).group(1))


def peak_memory(step: Callable[[], None], device: str) -> Tuple[float, str]:
    """Run ``step`` and measure the memory it takes at its peak: the one
    place that knows each platform's probe.

    Returns:
        tuple[float, str]: Bytes and how they were measured: CUDA
        ``max_memory_allocated`` during the step (absolute); on the CPU the
        peak resident size during the step minus the resident size before
        (Linux ``/proc``); where that is missing, the growth of the
        process's lifetime peak (``getrusage``, a lower bound).
    """
    gc.collect()
    if device.startswith('cuda'):
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
        step()
        return (torch.cuda.max_memory_allocated(device),
                'cuda max_memory_allocated')
    try:  # glibc: return freed heap pages, so that RSS is the live memory
        ctypes.CDLL('libc.so.6').malloc_trim(0)
    except (OSError, AttributeError):
        pass
    try:  # Linux >= 4.0: reset the peak resident size (VmHWM)
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')
        before = _status_kb('VmRSS')
    except OSError:
        import resource
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        step()
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return (after - before) * 1024, 'cpu growth of the peak RSS (>=)'
    step()
    return ((_status_kb('VmHWM') - before) * 1024,
            'cpu peak RSS - RSS before the step')


@contextlib.contextmanager
def _quiet_mmengine():
    """Silence mmengine's per-parameter init and optimizer messages."""
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def build(cfg: Config, device: str = 'cpu', seed: int = 0):
    """The config's model with random weights (``init_weights``, nothing
    downloaded), on ``device``."""
    torch.manual_seed(seed)
    with _quiet_mmengine():
        # e.g. Mask2Former's fixed 1024x1024 LSJ padding in training
        model = build_model(cfg, init_weights=True,
                            drop_preprocessor_keys=('batch_augments', ))
    return model.to(device)


def latency_s(model, shape: Sequence[int], device: str = 'cpu',
              seed: int = 0) -> float:
    """Seconds of one ``model.test_step`` on a synthetic image."""
    model.eval()
    data = synthetic_sample(shape, *class_counts(model), False, seed)
    with torch.no_grad():
        _sync(device)
        start = time.perf_counter()
        model.test_step(data)
        _sync(device)
    return time.perf_counter() - start


def train_figures(model, cfg: Config, shape: Sequence[int],
                  device: str = 'cpu', seed: int = 0,
                  train_runs: int = 2) -> Dict[str, float]:
    """``train_mem_mb`` (the first step, see the module docstring),
    ``mem_method``, ``train_step_s`` (median of ``train_runs`` further
    steps) and ``train_ips`` (images per second of those steps, batch 1)."""
    model.train()
    with _quiet_mmengine():
        optim_wrapper = build_optim_wrapper(
            model, copy.deepcopy(cfg.get('optim_wrapper') or DEFAULT_OPTIM))
    data = synthetic_sample(shape, *class_counts(model), True, seed)
    seconds = []

    def step():
        _sync(device)
        start = time.perf_counter()
        model.train_step(data, optim_wrapper)
        _sync(device)
        seconds.append(time.perf_counter() - start)

    peak, method = peak_memory(step, device)
    for _ in range(train_runs):  # optimizer state allocated: steady
        step()
    step_s = statistics.median(seconds[1:] or seconds)
    return dict(train_mem_mb=peak / 2**20, mem_method=method,
                train_step_s=step_s, train_ips=1.0 / step_s)


def run_benchmark(configs: Sequence[Tuple[str, Config]],
                  shape: Sequence[int], device: str = 'cpu', warmup: int = 2,
                  runs: int = 5, train: bool = True,
                  seed: int = 0) -> Dict[str, Dict[str, float]]:
    """Figures of every ``(name, cfg)``; the first is ours, and every other
    entry gets ``latency_ratio`` and ``mem_ratio`` = ours / theirs.

    All models are built first and their inference runs interleaved (run
    i of every model, then run i + 1), so that a machine slowing down or
    speeding up over minutes shifts every model alike and the ratios
    hold; the median of ``runs`` after ``warmup`` is ``latency_ms``. Then
    each model's training step (:func:`train_figures`), one model at a
    time.
    """
    if runs < 1 or warmup < 0:
        raise ValueError(f'need runs >= 1 and warmup >= 0, got {runs}, '
                         f'{warmup}')
    models = {name: build(cfg, device, seed) for name, cfg in configs}
    times = {name: [] for name in models}
    for i in range(warmup + runs):
        for name, model in models.items():
            seconds = latency_s(model, shape, device, seed)
            if i >= warmup:
                times[name].append(seconds)
    results = {}
    for name, cfg in configs:
        model = models[name]
        latency = statistics.median(times[name]) * 1e3
        results[name] = dict(
            params=sum(p.numel() for p in model.parameters()),
            latency_ms=latency, fps=1e3 / latency)
    if train:
        for name, cfg in configs:
            results[name].update(
                train_figures(models[name], cfg, shape, device, seed))
    ours = results[configs[0][0]]
    for name, _ in configs[1:]:
        theirs = results[name]
        theirs['latency_ratio'] = ours['latency_ms'] / theirs['latency_ms']
        if train:
            mem = theirs['train_mem_mb']
            theirs['mem_ratio'] = ours['train_mem_mb'] / mem if mem > 0 \
                else float('nan')
    return results


def format_table(results: Dict[str, Dict[str, float]]) -> str:
    """The results as a text table, ours first."""
    train = any('train_mem_mb' in r for r in results.values())
    header = ['model', 'params(M)', 'latency(ms)', 'fps']
    if train:
        header += ['train step(s)', 'train img/s', 'train mem(MB)']
    header += ['latency ours/this'] + (['mem ours/this'] if train else [])
    rows = []
    for i, (name, r) in enumerate(results.items()):
        row = [name, f'{r["params"] / 1e6:.2f}', f'{r["latency_ms"]:.1f}',
               f'{r["fps"]:.2f}']
        if train:
            row += [f'{r["train_step_s"]:.2f}', f'{r["train_ips"]:.3f}',
                    f'{r["train_mem_mb"]:.0f}']
        row += ['1.00' if i == 0 else f'{r["latency_ratio"]:.2f}']
        if train:
            row += ['1.00' if i == 0 else f'{r["mem_ratio"]:.2f}']
        rows.append(row)
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    lines = ['  '.join(str(x).ljust(w) for x, w in zip(line, widths))
             for line in [header] + rows]
    lines.insert(1, '  '.join('-' * w for w in widths))
    if train:
        methods = {r['mem_method'] for r in results.values()}
        lines.append(f'train mem: {", ".join(sorted(methods))}')
    return '\n'.join(lines)


def _names(paths: Sequence[str], cfgs: Sequence[Config]) -> List[str]:
    """``ModelType (config name)``, unique."""
    names = []
    for path, cfg in zip(paths, cfgs):
        name = f'{cfg.model.type} ({osp.splitext(osp.basename(path))[0]})'
        while name in names:
            name += "'"
        names.append(name)
    return names


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, Dict]:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    paths = [args.config, *args.baselines]
    cfgs = [load_config(paths[0], args.cfg_options)]
    cfgs += [load_config(p) for p in args.baselines]
    height, width = args.shape
    print(f'device {args.device} ({torch.get_num_threads()} CPU threads), '
          f'torch {torch.__version__}, input 1x3x{height}x{width}, '
          f'{args.warmup} warm-up + {args.runs} timed runs (median), '
          f'random weights', flush=True)
    results = run_benchmark(list(zip(_names(paths, cfgs), cfgs)),
                            (height, width), args.device, args.warmup,
                            args.runs, not args.skip_train, args.seed)
    print(format_table(results), flush=True)
    if args.stages:
        results['stages'] = _load_tool('benchmark_stages.py').report(
            cfgs[0], (height, width), args.device, args.runs,
            args.trained_like, args.seed)
    if args.onnx:
        onnx = onnx_latency(cfgs[0], (height, width), args.warmup, args.runs,
                            args.seed)
        print(f'network only, batch 1, CPU: PyTorch {onnx["pytorch_ms"]:.1f} '
              f'ms, onnxruntime {onnx["onnxruntime_ms"]:.1f} ms '
              f'({onnx["speedup"]:.2f}x), max abs difference '
              f'{onnx["max_abs"]:.2e}', flush=True)
        results['onnx'] = onnx
    return results


def onnx_latency(cfg: Config, shape: Sequence[int], warmup: int, runs: int,
                 seed: int) -> Dict[str, float]:
    """``measure_onnx_latency`` of ``tools/deployment``."""
    module = _load_tool(osp.join('..', 'deployment',
                                 'panoptic_segformer_onnx.py'))
    return module.measure_onnx_latency(cfg, shape, warmup, runs, seed=seed)


def _load_tool(relative_path: str):
    """A module of the tools by path (they are scripts, not a package)."""
    return load_script(
        osp.join(osp.dirname(osp.abspath(__file__)), relative_path))


if __name__ == '__main__':
    main()

"""Inference latency and training memory against mmdet baselines (Table 4).

Measures, in one process on one device, a config's model and the baselines
(mmdet's Deformable DETR R50 and Mask2Former R50 panoptic by default):

* inference latency: ``model.test_step`` (preprocessing, forward and
  post-processing, no data loading) on one synthetic image of ``--shape``
  (batch 1), ``--warmup`` runs discarded, the median of ``--runs``;
* one training step (``model.train_step``: forward, losses, backward and the
  config's optimizer step, the first one, so the optimizer state is
  allocated in it) on a synthetic panoptic sample (3 things, 2 stuff
  regions), its time and peak memory:
    - CUDA: ``torch.cuda.max_memory_allocated`` during the step, absolute
      (weights included), as mmdet logs it and the paper reports it;
    - CPU (Linux): the peak resident set size during the step minus the
      resident size before it (``VmHWM`` reset through
      ``/proc/self/clear_refs``), i.e. what the step adds to the loaded
      model. Where the reset is refused, the process's lifetime peak is used
      and the table says so.

Weights are random (``init_weights`` with every ``Pretrained`` init
removed, nothing is downloaded). The results of random weights differ from a
trained model's, which affects post-processing time only (e.g. how many
queries pass the score threshold). Fixed-size batch augmentations
(Mask2Former's 1024x1024 LSJ padding) are removed so that every model sees
the same input size.

    python tools/analysis_tools/benchmark.py CONFIG [--shape 800 1216] \\
        [--device cpu] [--warmup 2] [--runs 5] [--skip-train] \\
        [--baselines CFG ...] [--threads N]
"""
import argparse
import contextlib
import copy
import ctypes
import gc
import logging
import os.path as osp
import re
import resource
import statistics
import sys
import time
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from mmengine.config import Config, DictAction

sys.path.insert(0, osp.join(osp.dirname(osp.abspath(__file__)), '..', '..'))

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
    parser.add_argument('--skip-train', action='store_true',
                        help='do not run the training step')
    parser.add_argument('--threads', type=int, default=None,
                        help='torch CPU threads (default: torch\'s choice); '
                        'on a loaded machine 1 avoids OpenMP spin-waiting')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override keys of CONFIG (not the baselines)')
    return parser.parse_args(argv)


def load_config(path: str) -> Config:
    """``Config.fromfile``, also for ``package::path`` configs."""
    if '::' in path:
        from mmengine.hub import get_config
        return get_config(path)
    return Config.fromfile(path)


def _strip_pretrained(node) -> None:
    """Drop every ``init_cfg`` that would download weights (in place)."""
    if isinstance(node, dict):
        init_cfg = node.get('init_cfg')
        if isinstance(init_cfg, dict) and init_cfg.get('type') == 'Pretrained':
            node['init_cfg'] = None
        for value in node.values():
            _strip_pretrained(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            _strip_pretrained(value)


def _find_key(node, key: str):
    """First value of ``key`` in a nested config, depth-first."""
    if isinstance(node, dict):
        if key in node:
            return node[key]
        for value in node.values():
            found = _find_key(value, key)
            if found is not None:
                return found
    elif isinstance(node, (list, tuple)):
        for value in node:
            found = _find_key(value, key)
            if found is not None:
                return found
    return None


def class_counts(model_cfg) -> Tuple[int, int]:
    """(things, stuff) classes of a model config; detectors without
    ``num_things_classes`` have ``num_classes`` things and no stuff."""
    things = _find_key(model_cfg, 'num_things_classes')
    if things is not None:
        return int(things), int(_find_key(model_cfg, 'num_stuff_classes')
                                or 0)
    return int(_find_key(model_cfg, 'num_classes')), 0


def synthetic_sample(shape: Sequence[int], num_things_classes: int,
                     num_stuff_classes: int, with_gt: bool,
                     seed: int = 0) -> dict:
    """One image of ``shape`` as the data preprocessor takes it; with
    ground truth (3 rectangles, up to 2 stuff regions) for training."""
    from panseg_plugin.testing import demo_panoptic_batch
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


def _release_free_memory() -> None:
    """Return freed heap pages to the OS so that RSS is the live memory."""
    gc.collect()
    try:
        ctypes.CDLL('libc.so.6').malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _reset_peak_rss() -> bool:
    """Reset the process's ``VmHWM`` (Linux >= 4.0); False if refused."""
    try:
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')
        return True
    except OSError:
        return False


@contextlib.contextmanager
def _quiet_mmengine():
    """Silence mmengine's per-parameter init and optimizer messages."""
    from mmengine.logging import MMLogger
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def build_model(cfg: Config, device: str):
    """Model of ``cfg`` with random weights, no download, on ``device``."""
    from mmdet.registry import MODELS
    from mmengine.registry import init_default_scope
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    model_cfg = copy.deepcopy(cfg.model)
    _strip_pretrained(model_cfg)
    if model_cfg.get('data_preprocessor'):
        # e.g. Mask2Former's fixed 1024x1024 LSJ padding in training
        model_cfg.data_preprocessor.pop('batch_augments', None)
    with _quiet_mmengine():
        model = MODELS.build(model_cfg)
        model.init_weights()
    return model.to(device)


def measure(cfg: Config, shape: Sequence[int], device: str = 'cpu',
            warmup: int = 2, runs: int = 5, train: bool = True,
            seed: int = 0) -> Dict[str, float]:
    """Latency and training-step figures of one config.

    Returns:
        dict: ``params`` (count), ``latency_ms`` (median), ``fps``
        (1000 / latency_ms) and, if ``train``, ``train_step_s`` and
        ``train_mem_mb`` (see the module docstring), ``mem_method``.
    """
    if runs < 1 or warmup < 0:
        raise ValueError(f'need runs >= 1 and warmup >= 0, got {runs}, '
                         f'{warmup}')
    torch.manual_seed(seed)
    model = build_model(cfg, device)
    things, stuff = class_counts(cfg.model)
    result: Dict[str, float] = dict(
        params=sum(p.numel() for p in model.parameters()))

    model.eval()
    times: List[float] = []
    with torch.no_grad():
        for i in range(warmup + runs):
            data = synthetic_sample(shape, things, stuff, False, seed)
            _sync(device)
            start = time.perf_counter()
            model.test_step(data)
            _sync(device)
            if i >= warmup:
                times.append(time.perf_counter() - start)
    result['latency_ms'] = statistics.median(times) * 1e3
    result['fps'] = 1e3 / result['latency_ms']

    if train:
        from mmengine.optim import build_optim_wrapper
        model.train()
        with _quiet_mmengine():
            optim_wrapper = build_optim_wrapper(
                model,
                copy.deepcopy(cfg.get('optim_wrapper') or DEFAULT_OPTIM))
        data = synthetic_sample(shape, things, stuff, True, seed)
        _release_free_memory()
        cuda = device.startswith('cuda')
        if cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(device)
            method = 'cuda max_memory_allocated'
        else:
            rss_before = _status_kb('VmRSS')
            if _reset_peak_rss():
                method = 'cpu peak RSS - RSS before the step'
            else:
                method = 'cpu lifetime peak RSS - RSS before (approx.)'
        _sync(device)
        start = time.perf_counter()
        model.train_step(data, optim_wrapper)
        _sync(device)
        result['train_step_s'] = time.perf_counter() - start
        if cuda:
            peak = torch.cuda.max_memory_allocated(device)
        elif method.startswith('cpu peak'):
            peak = (_status_kb('VmHWM') - rss_before) * 1024
        else:
            peak = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss -
                    rss_before) * 1024
        result['train_mem_mb'] = peak / 2**20
        result['mem_method'] = method
        del optim_wrapper
    del model
    _release_free_memory()
    if device.startswith('cuda'):
        torch.cuda.empty_cache()
    return result


def run_benchmark(configs: Sequence[Tuple[str, Config]],
                  shape: Sequence[int], device: str = 'cpu', warmup: int = 2,
                  runs: int = 5, train: bool = True,
                  seed: int = 0) -> Dict[str, Dict[str, float]]:
    """:func:`measure` every ``(name, cfg)``; the first is ours, and every
    other entry gets ``latency_ratio`` and ``mem_ratio`` = ours / theirs."""
    results = {}
    for name, cfg in configs:
        results[name] = measure(cfg, shape, device, warmup, runs, train, seed)
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
        header += ['train step(s)', 'train mem(MB)']
    header += ['latency ours/this'] + (['mem ours/this'] if train else [])
    rows = []
    for i, (name, r) in enumerate(results.items()):
        row = [name, f'{r["params"] / 1e6:.2f}', f'{r["latency_ms"]:.1f}',
               f'{r["fps"]:.2f}']
        if train:
            row += [f'{r["train_step_s"]:.2f}', f'{r["train_mem_mb"]:.0f}']
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
    import panseg_plugin  # noqa: F401
    if args.threads:
        torch.set_num_threads(args.threads)
    paths = [args.config, *args.baselines]
    cfgs = [load_config(p) for p in paths]
    if args.cfg_options:
        cfgs[0].merge_from_dict(args.cfg_options)
    height, width = args.shape
    print(f'device {args.device} ({torch.get_num_threads()} CPU threads), '
          f'torch {torch.__version__}, input 1x3x{height}x{width}, '
          f'{args.warmup} warm-up + {args.runs} timed runs (median), '
          f'random weights', flush=True)
    results = run_benchmark(list(zip(_names(paths, cfgs), cfgs)),
                            (height, width), args.device, args.warmup,
                            args.runs, not args.skip_train, args.seed)
    print(format_table(results), flush=True)
    return results


if __name__ == '__main__':
    main()

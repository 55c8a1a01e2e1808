"""Stage-by-stage inference time and compute rate of a Panoptic SegFormer.

Used by ``benchmark.py --stages`` (and runnable on its own):

    python tools/analysis_tools/benchmark_stages.py CONFIG \\
        [--shape 800 1216] [--device cpu] [--runs 3] [--trained-like 50]

* :func:`stage_times`: ``predict`` split into backbone + neck, encoder,
  location decoder, mask decoder (the head's forward: mask decoder,
  classes, masks) and post-processing (the fusion head), each timed on its
  own, medians of ``runs``. Random weights keep no query above the score
  threshold, which makes post-processing look free; ``trained_like=K``
  gives K queries a class score of 0.9 (the others 0.01) before the fusion
  head, as a trained model has (about 40-50 segments pass on COCO).
* :func:`forward_flops`: multiply-adds of each stage counted by torch's
  ``FlopCounterMode`` (matrix products, convolutions, attention, torch's
  fused CPU attention kernel included; the deformable attention's bilinear
  sampling is not a matrix product and is not counted), and the rate
  each stage achieves (GFLOP/s, 2 FLOP per multiply-add).
* :func:`matmul_ceiling` : the rate of a large fp32 matrix product on the
  same device and threads, the ceiling those rates are compared with.
"""
import argparse
import statistics
import time
from collections import defaultdict
from typing import Dict, Optional, Sequence

import torch
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

STAGES = ('backbone + neck', 'encoder', 'location decoder', 'mask decoder',
          'post-processing')


def _sync(device: str) -> None:
    if str(device).startswith('cuda'):
        torch.cuda.synchronize(device)


def matmul_ceiling(device: str = 'cpu', size: int = 2048,
                   runs: int = 5) -> float:
    """GFLOP/s of a (size x size) @ (size x size) fp32 product, the best
    of ``runs`` after one warm-up."""
    a = torch.randn(size, size, device=device)
    b = torch.randn(size, size, device=device)
    best = float('inf')
    for i in range(runs + 1):
        _sync(device)
        start = time.perf_counter()
        torch.matmul(a, b)
        _sync(device)
        if i:
            best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


def _trained_like(cls_scores: torch.Tensor, num_kept: int) -> torch.Tensor:
    """Class logits (B, N, C) with ``num_kept`` queries of each image at
    score 0.9 in their best class and every other score at 0.01."""
    logits = torch.full_like(cls_scores, -4.595)  # sigmoid -> 0.01
    best = cls_scores.argmax(-1)
    keep = torch.zeros_like(best, dtype=torch.bool)
    keep[:, :num_kept] = True
    passing = torch.where(keep, logits.new_tensor(2.197),
                          logits.new_tensor(-4.595))  # sigmoid -> 0.9
    logits.scatter_(-1, best[..., None], passing[..., None])
    return logits


def _run_stages(model, data: dict, trained_like: Optional[int],
                device: str, clock) -> None:
    """One ``predict`` done stage by stage, each inside ``clock(name)``."""
    batch = model.data_preprocessor(data, False)
    inputs, samples = batch['inputs'], batch['data_samples']
    with clock('backbone + neck'):
        feats = model.extract_feat(inputs)
    with clock('encoder'):
        enc_in, dec_in = model.pre_transformer(feats, samples)
        enc_out = model.forward_encoder(**enc_in)
    with clock('location decoder'):
        tmp, head_in = model.pre_decoder(**enc_out)
        dec_in.update(tmp)
        head_in.update(model.forward_decoder(**dec_in))
    with clock('mask decoder'):
        cls_scores, mask_preds = model.bbox_head.predict(**head_in)
    if trained_like:
        cls_scores = _trained_like(cls_scores, trained_like)
    with clock('post-processing'):
        model.panoptic_fusion_head.predict(cls_scores, mask_preds, samples,
                                           rescale=True)


def stage_times(model, data_fn, device: str = 'cpu', warmup: int = 1,
                runs: int = 3,
                trained_like: Optional[int] = None) -> Dict[str, float]:
    """Median milliseconds of each stage of ``predict`` (see module doc).

    Args:
        model: A built :class:`PanopticSegFormer` in eval mode.
        data_fn (callable): Returns a fresh packed batch (dict with
            ``inputs`` and ``data_samples``).
        trained_like (int, optional): Queries given a passing score.
    """
    times = defaultdict(list)

    class _Clock:
        def __init__(self, name):
            self.name = name

        def __enter__(self):
            _sync(device)
            self.start = time.perf_counter()

        def __exit__(self, *exc):
            _sync(device)
            times[self.name].append(time.perf_counter() - self.start)

    with torch.no_grad():
        for i in range(warmup + runs):
            _run_stages(model, data_fn(), trained_like, device, _Clock)
            if i < warmup:
                times.clear()
    return {name: statistics.median(times[name]) * 1e3 for name in STAGES}


def _cpu_sdpa_flop(query_shape, key_shape, value_shape, *args, **kwargs):
    """FLOP of torch's fused CPU attention kernel, which FlopCounterMode's
    own table (its CUDA kernels only) leaves uncounted."""
    return sdpa_flop_count(query_shape, key_shape, value_shape)


# passed to each counter (``custom_mapping``), torch's table left as it is
EXTRA_FLOP_FORMULAS = {
    torch.ops.aten._scaled_dot_product_flash_attention_for_cpu:
    _cpu_sdpa_flop
}


def forward_flops(model, data: dict) -> Dict[str, float]:
    """FLOP of each stage of one ``predict`` (2 per multiply-add)."""
    flops = {}

    class _Count:
        def __init__(self, name):
            self.name = name
            self.mode = FlopCounterMode(display=False,
                                        custom_mapping=EXTRA_FLOP_FORMULAS)

        def __enter__(self):
            self.mode.__enter__()

        def __exit__(self, *exc):
            self.mode.__exit__(*exc)
            flops[self.name] = float(self.mode.get_total_flops())

    # FlopCounterMode's module tracker hooks tensors that require grad;
    # with none requiring it, counting works under no_grad
    needs_grad = [p for p in model.parameters() if p.requires_grad]
    for param in needs_grad:
        param.requires_grad_(False)
    try:
        with torch.no_grad():
            _run_stages(model, data, None, 'cpu', _Count)
    finally:
        for param in needs_grad:
            param.requires_grad_(True)
    return flops


def stage_table(times: Dict[str, float], flops: Dict[str, float],
                ceiling: float) -> str:
    """Text table: ms, share, GFLOP, GFLOP/s and % of the ceiling."""
    total = sum(times.values())
    lines = [f'{"stage":<18s} {"ms":>8s} {"share":>6s} {"GFLOP":>7s} '
             f'{"GFLOP/s":>8s} {"of ceiling":>10s}']
    for name in STAGES:
        ms, gflop = times[name], flops.get(name, 0.0) / 1e9
        rate = gflop / (ms / 1e3) if ms > 0 else 0.0
        lines.append(f'{name:<18s} {ms:8.1f} {100 * ms / total:5.1f}% '
                     f'{gflop:7.1f} {rate:8.1f} {100 * rate / ceiling:9.1f}%')
    gflop = sum(flops.values()) / 1e9
    rate = gflop / (total / 1e3)
    lines.append(f'{"forward":<18s} {total:8.1f} {100.0:5.1f}% {gflop:7.1f} '
                 f'{rate:8.1f} {100 * rate / ceiling:9.1f}%')
    lines.append(f'matmul ceiling: {ceiling:.1f} GFLOP/s (fp32 2048^3)')
    return '\n'.join(lines)


def report(cfg, shape: Sequence[int] = (800, 1216), device: str = 'cpu',
           runs: int = 3, trained_like: Optional[int] = 50,
           seed: int = 0) -> dict:
    """Build ``cfg``'s model with random weights, time its stages on one
    synthetic image of ``shape``, count their FLOP, measure the matmul
    ceiling, print the table and return ``times`` (ms), ``flops`` and
    ``ceiling_gflops``."""
    from panseg_plugin.testing import demo_panoptic_batch
    from panseg_plugin.utils.config_helpers import build_model
    torch.manual_seed(seed)
    model = build_model(cfg, init_weights=True).to(device).eval()
    fusion = model.panoptic_fusion_head
    stuff = tuple(range(fusion.num_things_classes,
                        fusion.num_things_classes +
                        min(2, fusion.num_stuff_classes)))

    def data_fn():
        batch = demo_panoptic_batch(
            image_shapes=(tuple(shape), ), num_things=(3, ),
            stuff_labels=(stuff, ),
            num_things_classes=fusion.num_things_classes, seed=seed)
        for sample in batch['data_samples']:
            del sample.gt_instances
            del sample.gt_sem_seg
        return batch

    times = stage_times(model, data_fn, device, runs=runs,
                        trained_like=trained_like)
    ceiling = matmul_ceiling(device)
    flops = forward_flops(model.cpu(), data_fn())
    print(f'stages of predict, 1x3x{shape[0]}x{shape[1]}, {device}, median '
          f'of {runs}, post-processing with '
          f'{trained_like or "no forced"} passing queries')
    print(stage_table(times, flops, ceiling), flush=True)
    return dict(times=times, flops=flops, ceiling_gflops=ceiling)


def main(argv: Optional[Sequence[str]] = None) -> dict:
    from panseg_plugin.utils.config_helpers import load_config
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config')
    parser.add_argument('--shape', type=int, nargs=2, default=[800, 1216])
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--runs', type=int, default=3)
    parser.add_argument('--trained-like', type=int, default=50)
    parser.add_argument('--threads', type=int, default=None)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    return report(load_config(args.config), args.shape, args.device,
                  args.runs, args.trained_like)


if __name__ == '__main__':
    main()

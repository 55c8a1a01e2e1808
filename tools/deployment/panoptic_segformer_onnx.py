"""ONNX export of Panoptic SegFormer and onnxruntime parity and latency.

Used by ``tools/deployment/pytorch2onnx.py``, ``demo/onnx_demo.py`` and
``benchmark.py --onnx``; ``onnx`` and ``onnxruntime`` (optional) are
imported by the functions that need them, never at module level.

The exported graph is the detector's ``mode='tensor'`` forward from the
preprocessed (normalised, padded) image to the last mask-decoder layer's
class and mask logits and the location predictions. Preprocessing (the
config's pipeline and data preprocessor) and post-processing (the fusion
head's mask-wise merging) stay in Python, the same code as in PyTorch.
"""
import contextlib
import copy
import logging
import statistics
import time
import warnings
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor, nn

INPUT_NAME = 'inputs'
OUTPUT_NAMES = ('cls_scores', 'mask_preds', 'loc_preds')
MIN_OPSET = 16  # GridSample, the sampling of deformable attention
DEFAULT_OPSET = 17
INSTALL_HINT = ('install the optional export requirements: '
                'pip install -r requirements/optional.txt')


def import_onnx():
    """``onnx``, or an ImportError naming the fix."""
    try:
        import onnx
    except ImportError as error:
        raise ImportError(f'onnx is not installed: {INSTALL_HINT}') \
            from error
    return onnx


def import_onnxruntime():
    """``onnxruntime``, or an ImportError naming the fix."""
    try:
        import onnxruntime
    except ImportError as error:
        raise ImportError(f'onnxruntime is not installed: {INSTALL_HINT}') \
            from error
    return onnxruntime


class PanopticSegFormerOnnxWrapper(nn.Module):
    """The detector's ``mode='tensor'`` forward on a plain image tensor.

    The detector's transformer reads the padded input size from the data
    samples; for export every image fills the input (no padding mask), as
    in mmdet's ONNX path of DETR-like detectors.

    The wrapper is put in eval mode, the detector with it: the export
    restores the mode it finds, and a detector in training mode would
    return every decoder layer and use batch statistics.

    Args:
        detector (nn.Module): A :class:`PanopticSegFormer`.
        input_shape (tuple[int, int]): (H, W) of the exported input.
    """

    def __init__(self, detector: nn.Module,
                 input_shape: Tuple[int, int]) -> None:
        super().__init__()
        self.detector = detector
        self.input_shape = tuple(int(s) for s in input_shape)
        self.eval()

    def forward(self, inputs: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        """Network outputs of a batch.

        Args:
            inputs (Tensor): Preprocessed images (B, 3, H, W), (H, W) the
                ``input_shape``.

        Returns:
            tuple[Tensor, Tensor, Tensor]: ``cls_scores`` (B, N, C) class
            logits and ``mask_preds`` (B, N, H / 8, W / 8) mask logits of
            the last mask-decoder layer, ``loc_preds`` (B, N, 3).
        """
        from mmdet.structures import DetDataSample
        if tuple(inputs.shape[-2:]) != self.input_shape:
            raise ValueError(f'expected inputs of size {self.input_shape}, '
                             f'got {tuple(inputs.shape)}')
        meta = dict(batch_input_shape=self.input_shape,
                    img_shape=self.input_shape, pad_shape=self.input_shape)
        samples = [DetDataSample(metainfo=meta)
                   for _ in range(inputs.size(0))]
        outs = self.detector(inputs, samples, mode='tensor')
        return outs.cls_scores[-1], outs.mask_preds[-1], outs.loc_preds


def check_feature_sizes(wrapper: PanopticSegFormerOnnxWrapper) -> List:
    """(h, w) of every feature level for the wrapper's input size; refuse
    a level with a side of 1.

    The encoder's reference points come from ``torch.linspace(0.5,
    h - 0.5, h)``, which torch's ONNX exporter turns into
    ``(end - start) / (steps - 1)`` steps: NaN for ``h == 1``, and the
    exported encoder silently differs from PyTorch.

    Raises:
        ValueError: Naming the sizes and the smallest input that works.
    """
    height, width = wrapper.input_shape
    with torch.no_grad():
        feats = wrapper.detector.extract_feat(
            torch.zeros(1, 3, height, width))
    sizes = [tuple(f.shape[-2:]) for f in feats]
    if min(min(s) for s in sizes) < 2:
        stride = max(height // sizes[-1][0], width // sizes[-1][1])
        raise ValueError(
            f'--shape {height} {width} gives feature levels {sizes}: a '
            'level with a side of 1 gets NaN reference points in torch\'s '
            'ONNX export (linspace with one step). Use a height and width '
            f'of at least {2 * stride}.')
    return sizes


def strip_pretrained(node) -> None:
    """Drop every ``Pretrained`` ``init_cfg`` of a config (in place)."""
    if isinstance(node, dict):
        init_cfg = node.get('init_cfg')
        if isinstance(init_cfg, dict) and init_cfg.get('type') == 'Pretrained':
            node['init_cfg'] = None
        for value in node.values():
            strip_pretrained(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            strip_pretrained(value)


@contextlib.contextmanager
def quiet_mmengine():
    """mmengine's logger at WARNING (no per-parameter init messages)."""
    from mmengine.logging import MMLogger
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def build_detector(cfg, checkpoint: Optional[str] = None,
                   seed: int = 0) -> nn.Module:
    """The config's detector on the CPU in eval mode.

    Args:
        cfg (Config): A detector config.
        checkpoint (str, optional): Weights, loaded strictly. None: random
            weights (``init_weights`` with seed ``seed``, nothing
            downloaded), e.g. to check an export without a trained model.
    """
    from mmdet.registry import MODELS
    from mmengine.registry import init_default_scope
    from mmengine.runner import load_checkpoint
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    model_cfg = copy.deepcopy(cfg.model)
    strip_pretrained(model_cfg)
    torch.manual_seed(seed)
    with quiet_mmengine():
        model = MODELS.build(model_cfg)
        if checkpoint is None:
            model.init_weights()
    if checkpoint is not None:
        load_checkpoint(model, checkpoint, map_location='cpu', strict=True)
    return model.cpu().eval()


def export_onnx(wrapper: PanopticSegFormerOnnxWrapper,
                out_file: str,
                batch_size: int = 1,
                opset: int = DEFAULT_OPSET,
                dynamic_batch: bool = True,
                seed: int = 0) -> Tensor:
    """Export ``wrapper`` to ``out_file`` and check the ONNX model.

    Deformable attention runs on mmcv's pure-PyTorch path
    (``multi_scale_deformable_attn_pytorch``, built on ``grid_sample``)
    because the model is on the CPU, hence ``opset >= 16``. Input sizes
    with a feature level of side 1 are refused
    (:func:`check_feature_sizes`).

    Args:
        wrapper (PanopticSegFormerOnnxWrapper): The model to export.
        out_file (str): Path of the ``.onnx`` file.
        batch_size (int): Batch of the example input.
        opset (int): ONNX opset, >= 16.
        dynamic_batch (bool): Make the batch dimension dynamic.
        seed (int): Seed of the random example input.

    Returns:
        Tensor: The example input (B, 3, H, W) used for the export.
    """
    onnx = import_onnx()
    if opset < MIN_OPSET:
        raise ValueError(f'opset must be >= {MIN_OPSET} (GridSample), got '
                         f'{opset}')
    wrapper.eval()
    check_feature_sizes(wrapper)
    generator = torch.Generator().manual_seed(seed)
    example = torch.randn(batch_size, 3, *wrapper.input_shape,
                          generator=generator)
    dynamic_axes = None
    if dynamic_batch:
        dynamic_axes = {name: {0: 'batch'}
                        for name in (INPUT_NAME, *OUTPUT_NAMES)}
    # The tracer warns where Python values are read from tensors (feature
    # sizes, level shapes): they are constants of the graph, hence its
    # fixed height and width.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter('ignore', torch.jit.TracerWarning)
        torch.onnx.export(
            wrapper, (example, ),
            out_file,
            input_names=[INPUT_NAME],
            output_names=list(OUTPUT_NAMES),
            dynamic_axes=dynamic_axes,
            opset_version=opset,
            do_constant_folding=True,
            dynamo=False)
    onnx.checker.check_model(out_file)
    return example


def create_session(onnx_file: str, num_threads: Optional[int] = None):
    """An onnxruntime session on the CPU execution provider.

    Args:
        onnx_file (str): The exported model.
        num_threads (int, optional): Intra-op threads; None: onnxruntime's
            default.
    """
    ort = import_onnxruntime()
    options = ort.SessionOptions()
    if num_threads:
        options.intra_op_num_threads = num_threads
    return ort.InferenceSession(
        onnx_file, sess_options=options,
        providers=['CPUExecutionProvider'])


def session_input_shape(session) -> Tuple[int, int]:
    """(H, W) of a session's image input; the batch may be dynamic."""
    shape = session.get_inputs()[0].shape
    if len(shape) != 4 or not all(isinstance(s, int) for s in shape[2:]):
        raise ValueError(f'expected an image input (B, 3, H, W) with fixed '
                         f'H and W, got {shape}')
    return int(shape[2]), int(shape[3])


def run_session(session, inputs: Tensor) -> Dict[str, Tensor]:
    """Outputs of an onnxruntime session as CPU tensors by name."""
    outputs = session.run(
        None, {session.get_inputs()[0].name: inputs.cpu().numpy()})
    names = [o.name for o in session.get_outputs()]
    return {name: torch.from_numpy(value)
            for name, value in zip(names, outputs)}


def run_pytorch(wrapper: nn.Module, inputs: Tensor) -> Dict[str, Tensor]:
    """Outputs of the wrapped PyTorch model by name."""
    with torch.no_grad():
        return dict(zip(OUTPUT_NAMES, wrapper(inputs)))


def compare_outputs(reference: Dict[str, Tensor], outputs: Dict[str, Tensor],
                    atol: float, rtol: float) -> Dict[str, Dict]:
    """Differences of ``outputs`` from ``reference``, output by output.

    An output passes when ``|out - ref| <= atol + rtol * |ref|`` everywhere
    (``numpy.allclose``).

    Returns:
        dict: Per output name: ``shape``, ``max_abs`` (max ``|out - ref|``),
        ``max_rel`` (max ``|out - ref| / max(|ref|, 1e-6)``) and ``ok``.
    """
    report = {}
    for name, ref in reference.items():
        if name not in outputs:
            raise KeyError(f'output {name!r} missing; got {sorted(outputs)}')
        out = outputs[name]
        if out.shape != ref.shape:
            raise ValueError(f'{name}: shape {tuple(out.shape)} differs from '
                             f'PyTorch {tuple(ref.shape)}')
        ref64, out64 = ref.double(), out.double()
        diff = (out64 - ref64).abs()
        report[name] = dict(
            shape=tuple(ref.shape),
            max_abs=float(diff.max()) if diff.numel() else 0.0,
            max_rel=float((diff / ref64.abs().clamp(min=1e-6)).max())
            if diff.numel() else 0.0,
            ok=bool(np.allclose(out64.numpy(), ref64.numpy(), rtol=rtol,
                                atol=atol)))
    return report


def _median_ms(fn, warmup: int, runs: int) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def compare_latency(wrapper: nn.Module, session, inputs: Tensor,
                    warmup: int = 2, runs: int = 5) -> Dict[str, float]:
    """CPU latency of the network, PyTorch vs onnxruntime, same input.

    Both time the exported part only (no pre- or post-processing): the
    PyTorch forward under ``no_grad`` and ``session.run``, the median of
    ``runs`` after ``warmup`` discarded runs.

    Returns:
        dict: ``pytorch_ms``, ``onnxruntime_ms``, ``speedup``
        (PyTorch / onnxruntime) and ``torch_threads``.
    """
    if runs < 1 or warmup < 0:
        raise ValueError(f'need runs >= 1 and warmup >= 0, got {runs}, '
                         f'{warmup}')
    feed = {session.get_inputs()[0].name: inputs.cpu().numpy()}
    with torch.no_grad():
        pytorch_ms = _median_ms(lambda: wrapper(inputs), warmup, runs)
    ort_ms = _median_ms(lambda: session.run(None, feed), warmup, runs)
    return dict(pytorch_ms=pytorch_ms, onnxruntime_ms=ort_ms,
                speedup=pytorch_ms / ort_ms,
                torch_threads=torch.get_num_threads())


def measure_onnx_latency(cfg, shape: Sequence[int], warmup: int = 2,
                         runs: int = 5, checkpoint: Optional[str] = None,
                         seed: int = 0) -> Dict[str, float]:
    """Export a config's detector to a temporary file and time it in
    PyTorch and onnxruntime (:func:`compare_latency`), batch 1, CPU.

    For latency tables: one call per config, e.g.
    ``measure_onnx_latency(cfg, (800, 1216))``.

    Args:
        cfg (Config): A Panoptic SegFormer config.
        shape (Sequence[int]): Input (H, W).
        warmup (int): Runs discarded.
        runs (int): Timed runs (median).
        checkpoint (str, optional): Weights; None: random.
        seed (int): Seed of random weights and input.

    Returns:
        dict: :func:`compare_latency`'s figures plus ``max_abs``, the
        largest difference of any output (a check that the timed graph
        computes the same thing).
    """
    import os.path as osp
    import tempfile
    wrapper = PanopticSegFormerOnnxWrapper(
        build_detector(cfg, checkpoint, seed), shape)
    with tempfile.TemporaryDirectory() as tmp_dir:
        onnx_file = osp.join(tmp_dir, 'model.onnx')
        example = export_onnx(wrapper, onnx_file, seed=seed)
        session = create_session(onnx_file,
                                 num_threads=torch.get_num_threads())
        parity = compare_outputs(run_pytorch(wrapper, example),
                                 run_session(session, example), 0, 0)
        result = compare_latency(wrapper, session, example, warmup, runs)
    result['max_abs'] = max(r['max_abs'] for r in parity.values())
    return result


def format_parity(report: Dict[str, Dict], atol: float,
                  rtol: float) -> str:
    """The parity report as text lines."""
    lines = [f'onnxruntime vs PyTorch (pass: |diff| <= {atol:g} + '
             f'{rtol:g} * |PyTorch|):']
    for name, r in report.items():
        lines.append(f'  {name:<11} {str(r["shape"]):<22} max abs '
                     f'{r["max_abs"]:.3e}  max rel {r["max_rel"]:.3e}  '
                     f'{"ok" if r["ok"] else "FAIL"}')
    return '\n'.join(lines)


def check_shape(shape: Sequence[int], divisor: int) -> Tuple[int, int]:
    """(H, W) as ints, each a positive multiple of ``divisor``."""
    height, width = (int(s) for s in shape)
    if height <= 0 or width <= 0 or height % divisor or width % divisor:
        raise ValueError(
            f'--shape {height} {width}: both must be positive multiples of '
            f'{divisor}, the data preprocessor\'s pad_size_divisor (images '
            'are padded to such sizes)')
    return height, width

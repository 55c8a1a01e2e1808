"""Mixed precision on the CPU: bfloat16 autocast around the forward pass."""
from contextlib import contextmanager

import torch
from mmengine.optim import OptimWrapper
from mmengine.registry import OPTIM_WRAPPERS


# Registered in mmengine's root registry rather than mmdet's: the root is
# searched from every scope, so a config dumped by an ``--amp`` run (which
# names this wrapper) builds under any ``default_scope``, even none.
@OPTIM_WRAPPERS.register_module()
class PanopticSegFormerCpuAmpOptimWrapper(OptimWrapper):
    """OptimWrapper that runs the forward pass under CPU bfloat16 autocast.

    mmengine's ``AmpOptimWrapper`` asserts that a GPU/NPU/MLU/MUSA device
    exists, and CPU autocast only supports bfloat16. bfloat16 keeps
    float32's exponent range, so no loss scaling is needed: backward and
    step stay those of the plain :class:`OptimWrapper` (and run outside
    autocast, as ``BaseModel.train_step`` calls them after the context).
    Parameters, gradients and optimizer state stay float32, so checkpoints
    of an AMP run are interchangeable with those of an fp32 run.

    ``tools/train.py --amp`` selects it on a machine without an
    accelerator; in a config::

        optim_wrapper = dict(type='PanopticSegFormerCpuAmpOptimWrapper',
                             optimizer=dict(type='AdamW', lr=1e-4))

    Args:
        dtype (torch.dtype | str): Autocast dtype; only bfloat16 is
            supported on the CPU. Defaults to ``torch.bfloat16``.
        **kwargs: Arguments of :class:`OptimWrapper` (``optimizer``,
            ``accumulative_counts``, ``clip_grad``).
    """

    def __init__(self, dtype=torch.bfloat16, **kwargs) -> None:
        if isinstance(dtype, str):
            dtype = getattr(torch, dtype, None)
        if dtype is not torch.bfloat16:
            raise ValueError('CPU autocast supports only torch.bfloat16, '
                             f'got dtype={dtype!r}')
        super().__init__(**kwargs)
        self.cast_dtype = dtype

    @contextmanager
    def optim_context(self, model):
        with super().optim_context(model), torch.autocast(
                device_type='cpu', dtype=self.cast_dtype):
            yield

"""``--launcher pytorch`` on a machine without CUDA (gloo, CPU DDP)."""
import torch
import torch.distributed as torch_dist
from mmengine.config import ConfigDict
from mmengine.registry import MODEL_WRAPPERS
from torch.nn.parallel import DistributedDataParallel


def setup_cpu_distributed(cfg) -> bool:
    """Prepare ``--launcher pytorch`` on a machine without CUDA; on one
    with CUDA do nothing (mmengine's own path: NCCL, a GPU per process).

    mmengine 0.10's ``init_dist('pytorch')`` calls ``torch.cuda.set_device``
    and ``Runner.wrap_model`` gives DistributedDataParallel
    ``device_ids=[LOCAL_RANK]``; both need CUDA. Starting the gloo process
    group here (from the ``RANK``/``WORLD_SIZE``/``MASTER_ADDR``/
    ``MASTER_PORT`` that torchrun sets) makes the Runner skip its own
    ``init_dist``, and ``device_ids=None`` in ``model_wrapper_cfg`` wins
    over the Runner's default: what DDP needs for a CPU module. The
    wrapper's other settings are the Runner's defaults.

    Args:
        cfg (Config): The training or test config, edited in place.

    Returns:
        bool: Whether the CPU path was set up.
    """
    if torch.cuda.is_available():
        return False
    cfg.setdefault('env_cfg', ConfigDict())
    cfg.env_cfg.dist_cfg = ConfigDict(backend='gloo')
    if not torch_dist.is_initialized():
        torch_dist.init_process_group(backend='gloo')
    wrapper_cfg = cfg.get('model_wrapper_cfg')
    if wrapper_cfg is None:
        wrapper_cfg = ConfigDict(
            type='MMDistributedDataParallel',
            broadcast_buffers=False,
            find_unused_parameters=cfg.get('find_unused_parameters', False))
    wrapper_type = wrapper_cfg.get('type', 'MMDistributedDataParallel')
    wrapper_cls = MODEL_WRAPPERS.get(wrapper_type) if isinstance(
        wrapper_type, str) else wrapper_type
    if wrapper_cls is None or not issubclass(wrapper_cls,
                                             DistributedDataParallel):
        raise RuntimeError(
            f'model_wrapper_cfg.type={wrapper_type!r} cannot train on CPU '
            'processes: use a DistributedDataParallel wrapper such as '
            'MMDistributedDataParallel, or train on GPUs')
    wrapper_cfg.device_ids = None
    cfg.model_wrapper_cfg = wrapper_cfg
    return True

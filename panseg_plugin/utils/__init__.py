from .checkpoint_safety import (UnsafeCheckpointError,
                                allow_mmengine_checkpoint_types,
                                explain_unsafe_checkpoint, trust_checkpoints)
from .config_helpers import build_model, load_config, strip_pretrained
from .cpu_distributed import setup_cpu_distributed
from .env_check import check_versions
from .scripts import load_script

__all__ = [
    'UnsafeCheckpointError', 'allow_mmengine_checkpoint_types', 'build_model',
    'load_config', 'load_script', 'strip_pretrained',
    'check_versions', 'explain_unsafe_checkpoint', 'setup_cpu_distributed',
    'trust_checkpoints'
]

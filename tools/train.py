"""Train a Panoptic SegFormer (or any mmdet 3.x) model from a config.

Usage::

    python tools/train.py CONFIG [--work-dir DIR] [--amp] [--auto-scale-lr]
        [--resume [CKPT]] [--trust-checkpoint] [--cfg-options k=v ...]
        [--launcher pytorch]

The script imports ``panseg_plugin`` itself, so a config that forgets
``custom_imports`` still finds the plugin's classes (install the package
first: ``bash tools/install.sh`` or ``pip install -e .``).

``--launcher pytorch`` (``tools/dist_train.sh``) on GPUs is mmengine's own
path (NCCL, one GPU per process). On a machine without CUDA it trains with
the gloo backend and a CPU DistributedDataParallel, so the multi-process
plumbing (sampler shards, gradient averaging, rank-0-only checkpoints and
logs, resume) runs anywhere.
"""
import argparse
import os
import os.path as osp

from mmdet.utils import register_all_modules, setup_cache_size_limit_of_dynamo
from mmengine.config import Config, ConfigDict, DictAction
from mmengine.device import get_device
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

import panseg_plugin  # noqa: F401  (checks versions, registers)
# Imported by name as well: registering the wrapper must not depend on the
# package's __init__ importing ``engine``.
from panseg_plugin.engine.optim_wrapper import \
    PanopticSegFormerCpuAmpOptimWrapper
from panseg_plugin.utils import (explain_unsafe_checkpoint,
                                 setup_cpu_distributed, trust_checkpoints)

CPU_AMP_WRAPPER = PanopticSegFormerCpuAmpOptimWrapper.__name__


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Train a detector')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--amp',
        action='store_true',
        help='automatic mixed precision: float16 AmpOptimWrapper with '
        'dynamic loss scale on GPU, bfloat16 autocast on CPU')
    parser.add_argument(
        '--auto-scale-lr',
        action='store_true',
        help='scale the LR by the total batch size over '
        'auto_scale_lr.base_batch_size')
    parser.add_argument(
        '--resume',
        nargs='?',
        type=str,
        const='auto',
        help='resume from this checkpoint; without a path, resume from '
        'the latest checkpoint in the work directory')
    parser.add_argument(
        '--trust-checkpoint',
        action='store_true',
        help='unpickle a resumed or loaded checkpoint even if it holds '
        'objects that are not weights (can run code: only for files you '
        'trust)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, xxx=yyy pairs merged into the '
        'config; lists as key="[a,b]" or key=a,b, nested as '
        'key="[(a,b),(c,d)]", quotes needed and no white space')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    # torch>=2.0's launchers pass --local-rank, older ones --local_rank.
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def enable_amp(optim_wrapper, device):
    """Switch ``optim_wrapper`` (a ConfigDict, edited in place) to mixed
    precision for ``device`` ('cuda', 'cpu', ...)."""
    if device == 'cpu':
        optim_wrapper.type = CPU_AMP_WRAPPER
        # GradScaler and float16 settings have no meaning for bfloat16.
        for key in ('loss_scale', 'dtype', 'use_fsdp'):
            optim_wrapper.pop(key, None)
    else:
        optim_wrapper.type = 'AmpOptimWrapper'
        optim_wrapper.loss_scale = 'dynamic'


def build_config(args):
    """Load the config and apply the command line on top of it."""
    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    if cfg.get('default_scope') is None:
        cfg.default_scope = 'mmdet'

    # work_dir priority: CLI > config > ./work_dirs/<config name>
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])

    if args.amp:
        if not isinstance(cfg.get('optim_wrapper'), ConfigDict):
            raise RuntimeError('--amp needs an `optim_wrapper` dict in the '
                               'config')
        enable_amp(cfg.optim_wrapper, get_device())

    if args.auto_scale_lr:
        scale_cfg = cfg.get('auto_scale_lr') or {}
        if 'enable' not in scale_cfg or 'base_batch_size' not in scale_cfg:
            raise RuntimeError(
                '--auto-scale-lr needs `auto_scale_lr = dict(enable=False, '
                'base_batch_size=N)` in the config')
        cfg.auto_scale_lr.enable = True

    # An explicit checkpoint wins over the work_dir's last_checkpoint.
    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume
    return cfg


def main(argv=None):
    args = parse_args(argv)
    if args.trust_checkpoint:
        trust_checkpoints()
    # Fewer recompilations when the model is wrapped by torch.compile.
    setup_cache_size_limit_of_dynamo()
    register_all_modules(init_default_scope=False)
    cfg = build_config(args)
    if args.launcher == 'pytorch':
        setup_cpu_distributed(cfg)
    if 'runner_type' in cfg:
        runner = RUNNERS.build(cfg)
    else:
        runner = Runner.from_cfg(cfg)
    with explain_unsafe_checkpoint():
        runner.train()


if __name__ == '__main__':
    main()

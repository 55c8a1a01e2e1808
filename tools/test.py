"""Test (and evaluate) a Panoptic SegFormer (or any mmdet 3.x) checkpoint.

Usage::

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out x.pkl]
        [--show] [--show-dir DIR] [--wait-time S] [--non-strict] [--tta]
        [--trust-checkpoint] [--cfg-options k=v ...] [--launcher pytorch]

Like ``tools/train.py`` it imports ``panseg_plugin`` itself, so a config
that forgets ``custom_imports`` still finds the plugin's classes.

A checkpoint whose parameter names or shapes do not match the config's
model is refused with the offending keys listed (mmengine only prints a
warning and evaluates with those weights left at their initial values);
``--non-strict`` logs the same list and evaluates anyway. A checkpoint
that torch's safe loading refuses is reported with its file and the
offending global; ``--trust-checkpoint`` loads it anyway.
"""
import argparse
import os
import os.path as osp
from functools import partial

from mmdet.engine.hooks.utils import trigger_visualization_hook
from mmdet.evaluation import DumpDetResults
from mmdet.utils import register_all_modules, setup_cache_size_limit_of_dynamo
from mmengine.config import Config, ConfigDict, DictAction
from mmengine.hooks import Hook
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

import panseg_plugin  # noqa: F401  (checks versions, registers)
from panseg_plugin.utils import (explain_unsafe_checkpoint,
                                 setup_cpu_distributed, trust_checkpoints)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='MMDet test (and eval) a model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        '--work-dir',
        help='the directory to save the file containing evaluation metrics')
    parser.add_argument(
        '--out',
        type=str,
        help='dump predictions to a .pkl file for offline evaluation '
        '(panoptic maps are stored uncompressed: large)')
    parser.add_argument(
        '--show', action='store_true', help='show prediction results')
    parser.add_argument(
        '--show-dir',
        help='directory where painted images are saved, under '
        'work_dir/timestamp/')
    parser.add_argument(
        '--wait-time', type=float, default=2,
        help='seconds each image is shown with --show')
    parser.add_argument(
        '--non-strict',
        action='store_true',
        help='evaluate even if the checkpoint\'s parameter names or shapes '
        'do not match the model (the mismatches are logged)')
    parser.add_argument(
        '--tta', action='store_true',
        help='test-time augmentation: the config\'s tta_model and '
        'tta_pipeline')
    parser.add_argument(
        '--trust-checkpoint',
        action='store_true',
        help='unpickle the checkpoint even if it holds objects that are '
        'not weights (can run code: only for files you trust)')
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
    if args.out is not None and not args.out.endswith(('.pkl', '.pickle')):
        parser.error('--out must name a .pkl or .pickle file')
    return args


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

    # loaded by LoadCheckpoint, strictly unless --non-strict
    cfg.load_from = None
    if args.tta:
        enable_tta(cfg)
    if args.show or args.show_dir:
        cfg = trigger_visualization_hook(cfg, args)
    return cfg


class LoadCheckpoint(Hook):
    """Loads the checkpoint through mmengine's ``Runner.load_checkpoint``
    with ``strict=True``, after every other ``before_run`` hook (EMA and
    other checkpoint hooks need theirs first); the runner then skips its
    own, lenient load.

    mmengine's test loop loads with ``strict=False`` and only prints a
    mismatch, so a wrong config would silently score a partly untrained
    model. With ``strict=True`` mmengine's ``load_state_dict`` raises,
    naming the missing, unexpected and reshaped keys; this hook re-raises
    that with the fix, or (``strict=False``, ``--non-strict``) logs it and
    loads leniently.
    """

    priority = 'LOWEST'

    def __init__(self, filename: str, strict: bool) -> None:
        self.filename = filename
        self.strict = strict

    def before_run(self, runner) -> None:
        # into the model itself when a DDP or test-time augmentation
        # wrapper holds it (mmengine's load_checkpoint)
        load = partial(runner.load_checkpoint, self.filename,
                       map_location='cpu')
        try:
            load(strict=True)
        except RuntimeError as err:
            if 'state_dict' not in str(err):
                raise
            message = (
                f'The checkpoint {self.filename} does not match the model '
                f'of the config: {err}\nThose parameters would keep their '
                'initial values. Check the config (classes, backbone, '
                'number of queries / levels) against the checkpoint, or '
                'pass --non-strict to evaluate anyway.')
            if self.strict:
                raise RuntimeError(message) from err
            runner.logger.warning(message)
            load(strict=False)


def enable_tta(cfg):
    """Wrap the model in the config's ``tta_model`` and test on its
    ``tta_pipeline``, as mmdet's ``tools/test.py --tta``."""
    if cfg.get('tta_model') is None or cfg.get('tta_pipeline') is None:
        raise KeyError(f'--tta needs tta_model and tta_pipeline in the '
                       f'config {cfg.filename}')
    cfg.model = ConfigDict(**cfg.tta_model, module=cfg.model)
    cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline


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
    runner.register_hook(
        LoadCheckpoint(args.checkpoint, strict=not args.non_strict))
    if args.out is not None:
        runner.test_evaluator.metrics.append(
            DumpDetResults(out_file_path=args.out))
    with explain_unsafe_checkpoint():
        runner.test()


if __name__ == '__main__':
    main()

"""Test (and evaluate) a Panoptic SegFormer (or any mmdet 3.x) checkpoint.

Usage::

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out x.pkl]
        [--show] [--show-dir DIR] [--wait-time S] [--non-strict]
        [--cfg-options k=v ...] [--launcher pytorch]

Like ``tools/train.py`` it imports ``panseg_plugin`` itself and puts the
repo root on ``sys.path``.

A checkpoint whose parameter names or shapes do not match the config's
model is refused with the offending keys listed (mmengine only prints a
warning and evaluates with those weights left at their initial values);
``--non-strict`` logs the same list and evaluates anyway.
"""
import argparse
import os
import os.path as osp
import re
import sys

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

from mmengine.config import Config, DictAction  # noqa: E402
from mmengine.model import is_model_wrapper  # noqa: E402
from mmengine.registry import RUNNERS  # noqa: E402
from mmengine.runner import Runner  # noqa: E402
from mmengine.runner.checkpoint import _load_checkpoint  # noqa: E402

from mmdet.engine.hooks.utils import trigger_visualization_hook  # noqa: E402
from mmdet.evaluation import DumpDetResults  # noqa: E402
from mmdet.utils import (register_all_modules,  # noqa: E402
                         setup_cache_size_limit_of_dynamo)

import panseg_plugin  # noqa: E402,F401  (checks versions, registers)


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

    cfg.load_from = args.checkpoint
    if args.show or args.show_dir:
        cfg = trigger_visualization_hook(cfg, args)
    return cfg


def checkpoint_mismatch(model, checkpoint,
                        revise_keys=((r'^module\.', ''), )):
    """Keys of ``checkpoint`` (a dict with or without ``state_dict``) that
    do not fit ``model``.

    Returns:
        dict: ``missing`` (in the model, not in the checkpoint),
        ``unexpected`` (in the checkpoint, not in the model), both sorted
        lists, and ``shape`` ({key: (checkpoint shape, model shape)}).
        BatchNorm's ``num_batches_tracked`` is ignored, as mmengine does.
    """
    state_dict = checkpoint.get('state_dict', checkpoint)
    for pattern, replacement in revise_keys:
        state_dict = {re.sub(pattern, replacement, k): v
                      for k, v in state_dict.items()}
    if is_model_wrapper(model):
        model = model.module
    own = model.state_dict()
    skip = 'num_batches_tracked'
    shape = {
        k: (tuple(state_dict[k].shape), tuple(own[k].shape))
        for k in own.keys() & state_dict.keys()
        if hasattr(state_dict[k], 'shape') and
        tuple(state_dict[k].shape) != tuple(own[k].shape)
    }
    return dict(
        missing=sorted(k for k in own.keys() - state_dict.keys()
                       if skip not in k),
        unexpected=sorted(k for k in state_dict.keys() - own.keys()
                          if skip not in k),
        shape=shape)


def format_mismatch(mismatch, limit=30):
    """Lines listing the keys of :func:`checkpoint_mismatch`, at most
    ``limit`` of each kind."""
    lines = []
    for kind, what in (('missing', 'missing from the checkpoint'),
                       ('unexpected', 'in the checkpoint, not in the model'),
                       ('shape', 'shape differs (checkpoint vs model)')):
        keys = mismatch[kind]
        if not keys:
            continue
        lines.append(f'  {len(keys)} {what}:')
        for key in sorted(keys)[:limit]:
            extra = (f': {keys[key][0]} vs {keys[key][1]}'
                     if kind == 'shape' else '')
            lines.append(f'    {key}{extra}')
        if len(keys) > limit:
            lines.append(f'    ... and {len(keys) - limit} more')
    return lines


def check_checkpoint(runner, filename, strict=True):
    """Refuse (``strict``) or log a checkpoint that does not fit the model.

    mmengine's ``Runner.load_checkpoint`` loads with ``strict=False`` and
    prints the mismatch without failing, so a wrong config silently scores a
    partly untrained model. This reads the checkpoint once more on the CPU,
    before the runner loads it (after its ``before_run`` hooks, which EMA
    and other checkpoint hooks need).

    Raises:
        RuntimeError: naming the missing, unexpected and reshaped keys.
    """
    mismatch = checkpoint_mismatch(
        runner.model, _load_checkpoint(filename, map_location='cpu'))
    if not any(mismatch.values()):
        return mismatch
    message = '\n'.join(
        [f'The checkpoint {filename} does not match the model of the '
         'config:'] + format_mismatch(mismatch) +
        ['Those parameters would keep their initial values. Check the '
         'config (classes, backbone, number of queries / levels) against '
         'the checkpoint, or pass --non-strict to evaluate anyway.'])
    if strict:
        raise RuntimeError(message)
    runner.logger.warning(message)
    return mismatch


def main(argv=None):
    args = parse_args(argv)
    # Fewer recompilations when the model is wrapped by torch.compile.
    setup_cache_size_limit_of_dynamo()
    register_all_modules(init_default_scope=False)
    cfg = build_config(args)
    if 'runner_type' in cfg:
        runner = RUNNERS.build(cfg)
    else:
        runner = Runner.from_cfg(cfg)
    check_checkpoint(runner, args.checkpoint, strict=not args.non_strict)
    if args.out is not None:
        runner.test_evaluator.metrics.append(
            DumpDetResults(out_file_path=args.out))
    runner.test()


if __name__ == '__main__':
    main()

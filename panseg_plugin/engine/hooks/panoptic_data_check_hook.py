"""Check a data set against the model and its files against each other
before a long run."""
import logging
import os.path as osp
import time
from typing import List, Optional, Tuple

from mmdet.registry import HOOKS
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.runner import BaseLoop

from ...datasets.panoptic_file_check import (check_dataset_files,
                                             format_problems, leaf_datasets)
from ...datasets.panoptic_metainfo import check_panoptic_metainfo


@HOOKS.register_module()
class PanopticDataCheckHook(Hook):
    """Fail before the first iteration when data and model disagree.

    mmdet's ``NumClassCheckHook`` compares only ``num_classes`` with
    ``len(classes)``; a panoptic model also needs the split. Every module
    of the model with ``num_things_classes`` and ``num_stuff_classes``
    (``bbox_head``, ``panoptic_fusion_head``) must match the lengths of the
    data set's ``metainfo['thing_classes']`` and ``['stuff_classes']``, and
    ``metainfo['classes']`` must be ``thing_classes + stuff_classes``: the
    model takes labels ``< num_things_classes`` for things, so stuff listed
    first trains "fine" and scores PQ 0 (mmdet #12305).

    With ``check_files`` (the default) it also reads the header of every
    image and panoptic PNG of the data set
    (:func:`~panseg_plugin.datasets.panoptic_file_check.check_dataset_files`,
    in parallel processes) and raises one ``ValueError`` listing every pair
    that would fail to load (a PNG of another size than its image as the
    image loader sees it, EXIF orientation included; a PNG that is not
    8-bit RGB; a missing or unreadable file), each with its fix, instead of
    stopping the run at the first such sample. The full list is also
    written to ``bad_files_<mode>.txt`` in the work directory.

    Checks the training data set, and the validation data set of the
    training run, when training starts (``before_train``), and the
    validation / test data set when those loops start alone, each once.
    During training it logs the number of training samples the data set
    skipped for bad files whenever it grows (see
    ``PanopticSegFormerCocoPanopticDataset.num_skipped``). Add it with
    ``custom_hooks = [dict(type="PanopticDataCheckHook")]`` (the plugin's
    ``configs/_base_/default_runtime.py`` does).

    Args:
        check_files (bool): Check the files before the first iteration.
            Defaults to True.
        num_workers (int, optional): Processes of the file check; None uses
            up to 8 of the CPUs. Defaults to None.
        max_listed (int): Problems shown in the error message (all are in
            the file). Defaults to 50.
    """

    priority = 'VERY_HIGH'

    def __init__(self,
                 check_files: bool = True,
                 num_workers: Optional[int] = None,
                 max_listed: int = 50) -> None:
        self.check_files = check_files
        self.num_workers = num_workers
        self.max_listed = max_listed
        self._checked = set()
        self._logged_skips = 0

    def before_train(self, runner) -> None:
        self._check_once(runner, 'train')
        val_loop = getattr(runner, '_val_loop', None)
        if isinstance(val_loop, BaseLoop):
            self._check_once(runner, 'val')

    def before_val(self, runner) -> None:
        self._check_once(runner, 'val')

    def before_test(self, runner) -> None:
        self._check_once(runner, 'test')

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs=None) -> None:
        skipped = sum(
            getattr(leaf, 'num_skipped', 0)
            for leaf in leaf_datasets(runner.train_dataloader.dataset))
        if skipped > self._logged_skips:
            self._logged_skips = skipped
            print_log(
                f'{skipped} training samples skipped so far for bad files '
                f'(each file is named once in a warning above)',
                logger='current', level=logging.WARNING)

    def _check_once(self, runner, mode: str) -> None:
        if mode in self._checked:
            return
        dataset = getattr(runner, f'{mode}_dataloader').dataset
        model = runner.model.module if is_model_wrapper(runner.model) \
            else runner.model
        where = f'{mode}_dataloader.dataset ({type(dataset).__name__})'
        check_panoptic_classes(dataset.metainfo, model, where)
        if self.check_files:
            self._check_files(runner, dataset, mode, where)
        self._checked.add(mode)

    def _check_files(self, runner, dataset, mode: str, where: str) -> None:
        start = time.perf_counter()
        problems, total = check_dataset_files(dataset, self.num_workers)
        seconds = time.perf_counter() - start
        if not problems:
            print_log(
                f'{where}: the {total} image / panoptic PNG pairs load '
                f'with matching sizes (headers checked in {seconds:.1f} s; '
                f'PanopticDataCheckHook(check_files=False) skips this)',
                logger='current')
            return
        listing = format_problems(problems, where, total)
        path = osp.join(runner.work_dir, f'bad_files_{mode}.txt')
        try:
            with open(path, 'w') as f:
                f.write(listing + '\n')
            saved = f' The full list is in {path}.'
        except OSError:
            saved = ''
        raise ValueError(
            format_problems(problems, where, total, self.max_listed) +
            f'\nFix these files before training.{saved} (Training alone '
            f'would skip such samples with one warning each; '
            f'PanopticDataCheckHook(check_files=False) turns this check '
            f'off.)')


def _heads(model) -> List[Tuple[str, object]]:
    """(name, module) of every module with a thing/stuff split."""
    return [(name, module) for name, module in model.named_modules()
            if hasattr(module, 'num_things_classes')
            and hasattr(module, 'num_stuff_classes')]


def check_panoptic_classes(metainfo: dict, model,
                           where: str = 'dataset') -> None:
    """Raise ``ValueError`` saying what to set when ``metainfo`` and the
    model's thing/stuff class counts disagree.

    The order rule of ``metainfo`` itself is the data set's
    (:func:`check_panoptic_metainfo`); the model's heads agreeing with each
    other is checked by the detector when it is built.

    Args:
        metainfo (dict): A data set's ``metainfo``.
        model (nn.Module): The (unwrapped) model.
        where (str): How to name the data set in messages.
    """
    things, stuff = check_panoptic_metainfo(metainfo, where)
    heads = _heads(model)
    if not heads:
        raise ValueError(
            f'{type(model).__name__} has no module with num_things_classes '
            f'and num_stuff_classes; PanopticDataCheckHook is for '
            f'panoptic models')
    wrong = [name for name, head in heads
             if (head.num_things_classes, head.num_stuff_classes) !=
             (len(things), len(stuff))]
    if wrong:
        found = '; '.join(
            f'model.{name}: num_things_classes={head.num_things_classes}, '
            f'num_stuff_classes={head.num_stuff_classes}'
            for name, head in heads if name in wrong)
        # every head: the detector requires them to agree
        keys = ' and '.join(f'model.{name}' for name, _ in heads)
        raise ValueError(
            f'{where} has {len(things)} thing classes and {len(stuff)} stuff '
            f'classes but {found}. Set num_things_classes={len(things)} and '
            f'num_stuff_classes={len(stuff)} in {keys}, or fix the data '
            f'set\'s metainfo thing_classes/stuff_classes')
    print_log(
        f'{where}: {len(things)} thing + {len(stuff)} stuff classes match '
        f'the model', logger='current')

"""Check a data set's thing/stuff classes against the model's heads."""
from typing import List, Tuple

from mmdet.registry import HOOKS
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper


@HOOKS.register_module()
class PanopticSegFormerDataCheckHook(Hook):
    """Fail before the first iteration when data and model disagree.

    mmdet's ``NumClassCheckHook`` compares only ``num_classes`` with
    ``len(classes)``; a panoptic model also needs the split. Every module
    of the model with ``num_things_classes`` and ``num_stuff_classes``
    (``bbox_head``, ``panoptic_fusion_head``) must match the lengths of the
    data set's ``metainfo['thing_classes']`` and ``['stuff_classes']``, and
    ``metainfo['classes']`` must be ``thing_classes + stuff_classes``: the
    model takes labels ``< num_things_classes`` for things, so stuff listed
    first trains "fine" and scores PQ 0 (mmdet #12305).

    Checks the training data set when training starts (``before_train``)
    and the validation / test data set when those loops start, each once.
    Add it with
    ``custom_hooks = [dict(type="PanopticSegFormerDataCheckHook")]``.
    """

    priority = 'VERY_HIGH'

    def __init__(self) -> None:
        self._checked = set()

    def before_train(self, runner) -> None:
        self._check_once(runner, 'train')

    def before_val(self, runner) -> None:
        self._check_once(runner, 'val')

    def before_test(self, runner) -> None:
        self._check_once(runner, 'test')

    def _check_once(self, runner, mode: str) -> None:
        if mode in self._checked:
            return
        dataset = getattr(runner, f'{mode}_dataloader').dataset
        model = runner.model.module if is_model_wrapper(runner.model) \
            else runner.model
        check_panoptic_classes(dataset.metainfo, model,
                               f'{mode}_dataloader.dataset '
                               f'({type(dataset).__name__})')
        self._checked.add(mode)


def _heads(model) -> List[Tuple[str, object]]:
    """(name, module) of every module with a thing/stuff split."""
    return [(name, module) for name, module in model.named_modules()
            if hasattr(module, 'num_things_classes')
            and hasattr(module, 'num_stuff_classes')]


def check_panoptic_classes(metainfo: dict, model,
                           where: str = 'dataset') -> None:
    """Raise ``ValueError`` saying what to set when ``metainfo`` and the
    model's thing/stuff class counts or order disagree.

    Args:
        metainfo (dict): A data set's ``metainfo``.
        model (nn.Module): The (unwrapped) model.
        where (str): How to name the data set in messages.
    """
    classes = metainfo.get('classes')
    things = metainfo.get('thing_classes')
    stuff = metainfo.get('stuff_classes')
    if classes is not None and things is None and stuff is None:
        # a detection / instance data set (e.g. CocoDataset): all things
        things, stuff = classes, ()
    if classes is None or things is None or stuff is None:
        raise ValueError(
            f'{where}: metainfo needs classes, thing_classes and '
            f'stuff_classes (classes = thing_classes + stuff_classes); it '
            f'has {sorted(metainfo)}')
    for key, value in (('classes', classes), ('thing_classes', things),
                       ('stuff_classes', stuff)):
        if isinstance(value, str):
            raise ValueError(f'{where}: metainfo["{key}"] is the string '
                             f'"{value}"; write a tuple: ("{value}", )')
    classes, things, stuff = tuple(classes), tuple(things), tuple(stuff)
    if classes != things + stuff:
        raise ValueError(
            f'{where}: metainfo["classes"] must list thing_classes first, '
            f'then stuff_classes (labels < num_things_classes are things): '
            f'set classes={things + stuff}, got {classes}')
    heads = _heads(model)
    if not heads:
        raise ValueError(
            f'{type(model).__name__} has no module with num_things_classes '
            f'and num_stuff_classes; PanopticSegFormerDataCheckHook is for '
            f'panoptic models')
    wrong = [f'model.{name}: num_things_classes={head.num_things_classes}, '
             f'num_stuff_classes={head.num_stuff_classes}'
             for name, head in heads
             if (head.num_things_classes, head.num_stuff_classes) !=
             (len(things), len(stuff))]
    if wrong:
        raise ValueError(
            f'{where} has {len(things)} thing classes and {len(stuff)} stuff '
            f'classes but {"; ".join(wrong)}. Set num_things_classes='
            f'{len(things)} and num_stuff_classes={len(stuff)} in '
            f'model.bbox_head and model.panoptic_fusion_head, or fix '
            f'metainfo thing_classes/stuff_classes')
    print_log(
        f'{where}: {len(things)} thing + {len(stuff)} stuff classes match '
        f'the model', logger='current')

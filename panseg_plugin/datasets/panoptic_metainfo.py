"""The thing/stuff rule of a panoptic data set's ``metainfo``."""
from typing import Tuple


def check_panoptic_metainfo(metainfo: dict,
                            where: str = 'dataset'
                            ) -> Tuple[Tuple[str, ...], Tuple[str, ...]]:
    """Check that ``metainfo['classes']`` is ``thing_classes`` followed by
    ``stuff_classes`` and return the two lists.

    The model takes labels ``< num_things_classes`` for things, so stuff
    listed first trains "fine" and scores PQ 0 (mmdet #12305). A detection
    or instance data set (``classes`` only) counts as things only.

    Args:
        metainfo (dict): A data set's ``metainfo``.
        where (str): How to name the data set in messages.

    Returns:
        tuple[tuple[str], tuple[str]]: ``thing_classes``, ``stuff_classes``.

    Raises:
        ValueError: Naming the ``metainfo`` key to set.
    """
    classes = metainfo.get('classes')
    things = metainfo.get('thing_classes')
    stuff = metainfo.get('stuff_classes')
    if classes is not None and things is None and stuff is None:
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
            f'then stuff_classes (the model takes labels < '
            f'num_things_classes for things): set the data set\'s '
            f'metainfo=dict(classes={things + stuff}, ...), got '
            f'classes={classes}')
    return things, stuff

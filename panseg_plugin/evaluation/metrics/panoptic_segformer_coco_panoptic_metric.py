"""COCO panoptic metric that survives a group (things, stuff) without any
segment and leaves the predictions it reads unchanged."""
import logging
from contextlib import contextmanager
from typing import Dict, Optional, Tuple

from mmdet.evaluation import CocoPanopticMetric
from mmdet.registry import METRICS
from mmengine.logging import print_log

try:
    from panopticapi.evaluation import PQStat
except ImportError:  # CocoPanopticMetric itself reports the missing package
    PQStat = None

GROUP_NAMES = {None: 'All', True: 'Things', False: 'Stuff'}


def group_is_empty(pq_stat, categories: dict,
                   isthing: Optional[bool]) -> bool:
    """Whether no category of the group has a true positive, false positive
    or false negative, i.e. neither the ground truth nor the prediction has
    a segment of the group: panopticapi's ``pq_average`` divides by zero
    then.

    Args:
        pq_stat (PQStat): Accumulated statistics, indexed by category id.
        categories (dict): ``{category id: {'isthing': 0 or 1, ...}}``.
        isthing (bool | None): The group: things (True), stuff (False) or
            all categories (None).
    """
    for label, info in categories.items():
        if isthing is not None and (info['isthing'] == 1) != isthing:
            continue
        stat = pq_stat.pq_per_cat.get(label)
        if stat is not None and stat.tp + stat.fp + stat.fn > 0:
            return False
    return True


def empty_group_average(categories: dict, isthing: Optional[bool],
                        value: float) -> Tuple[dict, dict]:
    """What ``PQStat.pq_average`` returns for an empty group: ``value`` for
    PQ, SQ and RQ, ``n`` 0, and per category 0.0 as panopticapi gives any
    category without segments."""
    per_class = {
        label: {'pq': 0.0, 'sq': 0.0, 'rq': 0.0}
        for label, info in categories.items()
        if isthing is None or (info['isthing'] == 1) == isthing
    }
    return {'pq': value, 'sq': value, 'rq': value, 'n': 0}, per_class


@contextmanager
def defined_empty_groups(value: float = 0.0):
    """Within the block, ``PQStat.pq_average`` returns
    :func:`empty_group_average` for an empty group instead of raising
    ``ZeroDivisionError`` (panopticapi #54), and logs a warning naming the
    group. Other groups are computed by panopticapi unchanged."""
    original = PQStat.pq_average

    def pq_average(self, categories, isthing):
        if not group_is_empty(self, categories, isthing):
            return original(self, categories, isthing)
        print_log(
            f'Panoptic quality: no ground-truth or predicted segment of '
            f'group "{GROUP_NAMES[isthing]}"; its PQ, SQ and RQ are reported '
            f'as {value} (n = 0).',
            logger='current', level=logging.WARNING)
        return empty_group_average(categories, isthing, value)

    PQStat.pq_average = pq_average
    try:
        yield
    finally:
        PQStat.pq_average = original


@METRICS.register_module()
class PanopticSegFormerCocoPanopticMetric(CocoPanopticMetric):
    """mmdet's :class:`CocoPanopticMetric` that reports a defined value for
    a group (All, Things or Stuff) without any segment.

    panopticapi's ``PQStat.pq_average``, which ``CocoPanopticMetric`` calls
    for the three groups, divides by the number of categories of the group
    that have a segment in the ground truth or the prediction. That is zero
    for 'Stuff' on a data set without stuff classes (or without stuff in
    the validation images) when the model predicts none, and for 'Things'
    on a stuff-only validation set, so evaluation raises
    ``ZeroDivisionError`` at the end of a whole validation run.

    Here such a group reports ``empty_group_value`` (default 0.0) for PQ,
    SQ and RQ and ``n = 0`` in the printed table, with a warning; the other
    groups, the per-class results and every other behaviour are mmdet's.
    0.0 rather than NaN, because the metrics are logged as numbers, compared
    by ``CheckpointHook(save_best=...)`` (NaN compares false with
    everything) and averaged by dashboards; ``n = 0`` says the group was
    empty, and panopticapi already gives 0.0 to each category without
    segments. Pass ``empty_group_value=float('nan')`` to get NaN instead.

    mmdet's ``_parse_predictions`` also writes panopticapi's void id into
    ``pred_panoptic_seg.sem_seg`` through ``.cpu().numpy()``, which on the
    CPU is the model's own tensor: every later reader of the prediction
    (a second metric, ``DetVisualizationHook`` with ``--show-dir``,
    ``DumpDetResults``) sees void pixels as class 0. This metric parses a
    copy.

    Args:
        empty_group_value (float): PQ, SQ and RQ of an empty group.
            Defaults to 0.0.
        **kwargs: Arguments of :class:`CocoPanopticMetric`.
    """

    def __init__(self, empty_group_value: float = 0.0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.empty_group_value = float(empty_group_value)

    def _parse_predictions(self, pred: dict, *args, **kwargs) -> dict:
        """mmdet's parsing, on a copy of the panoptic map."""
        pan = dict(pred['pred_panoptic_seg'])
        pan['sem_seg'] = pan['sem_seg'].clone()
        return super()._parse_predictions(
            dict(pred, pred_panoptic_seg=pan), *args, **kwargs)

    def compute_metrics(self, results: list) -> Dict[str, float]:
        # The division sits in the middle of mmdet's compute_metrics (about
        # 100 lines for its two modes); patching the one call for the
        # duration of the computation keeps all of them mmdet's.
        with defined_empty_groups(self.empty_group_value):
            return super().compute_metrics(results)

"""COCO panoptic metric that survives a group (things, stuff) without any
segment and leaves the predictions it reads unchanged."""
import logging
from typing import Dict, Optional, Tuple

from mmdet.evaluation import CocoPanopticMetric
from mmdet.evaluation.metrics.coco_panoptic_metric import (
    parse_pq_results, print_panoptic_table)
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


def pq_group_averages(pq_stat, categories: dict,
                      empty_value: float = 0.0) -> Dict[str, tuple]:
    """``PQStat.pq_average`` of the groups All, Things and Stuff, with
    :func:`empty_group_average` for a group without any segment (where
    panopticapi divides by zero, panopticapi #54).

    Returns:
        dict[str, tuple[dict, dict]]: Group name to (averages, per class).
    """
    averages = {}
    for isthing, name in GROUP_NAMES.items():
        if group_is_empty(pq_stat, categories, isthing):
            print_log(
                f'Panoptic quality: no ground-truth or predicted segment of '
                f'group "{name}"; its PQ, SQ and RQ are reported as '
                f'{empty_value} (n = 0).',
                logger='current', level=logging.WARNING)
            averages[name] = empty_group_average(categories, isthing,
                                                 empty_value)
        else:
            averages[name] = pq_stat.pq_average(categories, isthing=isthing)
    return averages


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

    Here, in the default evaluation (per-batch statistics, no
    ``outfile_prefix``), such a group reports ``empty_group_value``
    (default 0.0) for PQ, SQ and RQ and ``n = 0`` in the printed table, with
    a warning; the other groups, the per-class results and every other
    behaviour are mmdet's.
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
        """mmdet's computation with defined empty groups.

        By default (no ``outfile_prefix``) mmdet accumulates one ``PQStat``
        per batch; they are summed and averaged here with
        :func:`pq_group_averages`, and the table and metric names are
        mmdet's own functions. With ``outfile_prefix`` (result files kept,
        or ``format_only``) mmdet's whole computation runs, and an empty
        group raises a ``ValueError`` that says so.
        """
        if self.tmp_dir is None:
            try:
                return super().compute_metrics(results)
            except ZeroDivisionError as err:
                raise ValueError(
                    'Panoptic quality of a group (things or stuff) without '
                    'any ground-truth or predicted segment is undefined; '
                    'evaluate without outfile_prefix to report it as '
                    'empty_group_value') from err
        if self._coco_api is None:
            names = self.dataset_meta['classes']
            things = set(self.dataset_meta['thing_classes'])
            self.categories = {
                i: dict(id=i, name=name, isthing=int(name in things))
                for i, name in enumerate(names)
            }
        pq_stat = PQStat()
        for result in results:
            pq_stat += result
        averages = pq_group_averages(pq_stat, self.categories,
                                     self.empty_group_value)
        pq_results = {name: avg for name, (avg, _) in averages.items()}
        classwise = None
        if self.classwise:
            classwise = dict(
                zip(self.dataset_meta['classes'],
                    averages['All'][1].values()))
        print_panoptic_table(pq_results, classwise, logger='current')
        return parse_pq_results(pq_results)

"""Hungarian matcher of Panoptic SegFormer (paper section 3.5)."""
from typing import Optional

import torch
from mmdet.models.task_modules import HungarianAssigner
from mmdet.registry import TASK_UTILS
from mmengine.structures import InstanceData


class _CheckedCost:
    """Wraps a match cost and refuses a non-finite cost matrix.

    scipy's ``linear_sum_assignment`` only reports "cost matrix is
    infeasible" or "invalid numeric entries"; this names the guilty term.
    """

    def __init__(self, cost) -> None:
        self.cost = cost

    def __call__(self, pred_instances: InstanceData,
                 gt_instances: InstanceData,
                 img_meta: Optional[dict] = None, **kwargs):
        cost = self.cost(
            pred_instances=pred_instances,
            gt_instances=gt_instances,
            img_meta=img_meta,
            **kwargs)
        if not torch.isfinite(cost).all():
            where = ''
            if img_meta is not None and img_meta.get('img_path'):
                where = f' for image {img_meta["img_path"]}'
            bad = (~torch.isfinite(cost)).sum().item()
            raise ValueError(
                f'{type(self.cost).__name__} (weight {self.cost.weight}) '
                f'produced {bad} non-finite entries (NaN/inf) in the '
                f'matching cost{where}: the predictions are already '
                'non-finite. Lower the learning rate, keep gradient '
                'clipping on, or train in fp32 instead of --amp.')
        return cost


@TASK_UTILS.register_module()
class PanopticSegFormerAssigner(HungarianAssigner):
    """One-to-one matching of queries to things and stuff.

    The cost is the sum of a classification cost (focal) and a segmentation
    cost (dice), as in paper section 3.5. mmdet's :class:`HungarianAssigner`
    already solves the assignment; this subclass adds a finiteness check on
    each cost term. Zero ground truth assigns every query to background;
    more ground truth than queries matches as many as there are queries and
    leaves the rest unmatched (the Hungarian solver takes rectangular
    matrices).

    Args:
        match_costs (list[dict]): Match cost configs, e.g.
            ``[dict(type='FocalLossCost', weight=1.0),
            dict(type='DiceCost', weight=1.0, pred_act=True)]``.
    """

    def __init__(self, match_costs) -> None:
        super().__init__(match_costs)
        self.match_costs = [_CheckedCost(cost) for cost in self.match_costs]

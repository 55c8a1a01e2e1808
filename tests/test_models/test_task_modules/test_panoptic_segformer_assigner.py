import pytest
import torch
from mmengine.structures import InstanceData

import panseg_plugin  # noqa: F401
from mmdet.registry import TASK_UTILS

COSTS = [
    dict(type='mmdet.FocalLossCost', weight=1.0),
    dict(type='mmdet.DiceCost', weight=1.0, pred_act=True, naive_dice=False)
]


def _assigner():
    return TASK_UTILS.build(
        dict(type='PanopticSegFormerAssigner', match_costs=COSTS))


def _preds(n=6, c=4, hw=(8, 8), seed=0):
    g = torch.Generator().manual_seed(seed)
    return InstanceData(scores=torch.randn(n, c, generator=g),
                        masks=torch.randn(n, *hw, generator=g))


def _gts(m=3, c=4, hw=(8, 8), seed=1):
    g = torch.Generator().manual_seed(seed)
    return InstanceData(labels=torch.randint(0, c, (m, ), generator=g),
                        masks=(torch.rand(m, *hw, generator=g) > 0.5).float())


def test_one_to_one_matching():
    result = _assigner().assign(_preds(), _gts())
    matched = result.gt_inds[result.gt_inds > 0]
    assert sorted(matched.tolist()) == [1, 2, 3]
    assert (result.gt_inds >= 0).all()


def test_zero_ground_truth_assigns_all_to_background():
    result = _assigner().assign(_preds(), _gts(m=0))
    assert (result.gt_inds == 0).all()


def test_more_ground_truth_than_queries():
    result = _assigner().assign(_preds(n=3), _gts(m=5))
    assert (result.gt_inds > 0).all()
    assert len(set(result.gt_inds.tolist())) == 3


def test_matches_exhaustive_search_on_a_small_problem():
    import itertools
    assigner = _assigner()
    preds, gts = _preds(n=4), _gts(m=2)
    cost = sum(c.cost(pred_instances=preds, gt_instances=gts)
               for c in assigner.match_costs)
    best = min(itertools.permutations(range(4), 2),
               key=lambda rows: cost[rows[0], 0] + cost[rows[1], 1])
    result = assigner.assign(preds, gts)
    assert result.gt_inds[best[0]] == 1 and result.gt_inds[best[1]] == 2


@pytest.mark.parametrize('field, term', [('scores', 'FocalLossCost'),
                                         ('masks', 'DiceCost')])
def test_non_finite_cost_names_the_term(field, term):
    preds = _preds()
    getattr(preds, field)[0].fill_(float('nan'))
    with pytest.raises(ValueError, match=term) as err:
        _assigner().assign(preds, _gts(), img_meta=dict(img_path='a.jpg'))
    assert 'a.jpg' in str(err.value)

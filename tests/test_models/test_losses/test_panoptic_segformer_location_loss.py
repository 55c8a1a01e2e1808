import pytest
import torch

from panseg_plugin.models.losses import PanopticSegFormerLocationLoss


def test_location_loss_value_and_empty_case():
    loss = PanopticSegFormerLocationLoss(loss_weight=5.0)
    pred = torch.tensor([[0.5, 0.5, 0.1], [0.2, 0.4, 0.3]],
                        requires_grad=True)
    target = torch.tensor([[0.4, 0.5, 0.2], [0.2, 0.1, 0.3]])
    # (0.1 + 0 + 0.1) + (0 + 0.3 + 0) = 0.5 over 2 pairs, x5
    torch.testing.assert_close(loss(pred, target), torch.tensor(1.25))
    torch.testing.assert_close(loss(pred, target, avg_factor=5),
                               torch.tensor(0.5))
    empty = loss(pred[:0], target[:0], avg_factor=1.0)
    assert empty.item() == 0.0
    empty.backward()
    assert pred.grad is not None and (pred.grad == 0).all()


def test_location_loss_shape_check():
    with pytest.raises(ValueError, match=r'\(M, 3\)'):
        PanopticSegFormerLocationLoss()(torch.zeros(2, 4), torch.zeros(2, 4))

"""Location loss of Panoptic SegFormer (paper Eq. 4)."""
from typing import Optional

from mmdet.registry import MODELS
from torch import Tensor, nn


@MODELS.register_module()
class PanopticSegFormerLocationLoss(nn.Module):
    """L1 loss on the predicted centre and scale of matched queries.

    ``L_loc = sum_i 1[y_i != 0] (|f_c(m_i) - u_sigma(i)|_1 +
    |f_s(m_i) - v_sigma(i)|)``: the L1 distance between the centre (cx, cy)
    and the scale (mask area / image area) of the matched ground-truth mask
    and the location decoder's prediction, summed over matched pairs and
    divided by ``avg_factor`` (the number of matched pairs).

    Args:
        loss_weight (float): lambda_loc of Eq. 3 (5 in the paper).
    """

    def __init__(self, loss_weight: float = 5.0) -> None:
        super().__init__()
        self.loss_weight = loss_weight

    def forward(self,
                pred: Tensor,
                target: Tensor,
                avg_factor: Optional[float] = None) -> Tensor:
        """Compute the loss.

        Args:
            pred (Tensor): (M, 3) predicted (cx, cy, scale) of matched queries.
            target (Tensor): (M, 3) (cx, cy, scale) of the matched masks.
            avg_factor (float, optional): Normaliser; defaults to M (at
                least 1).

        Returns:
            Tensor: Scalar loss. With M = 0 it is 0 and still part of the
            graph, so every parameter receives a (zero) gradient.
        """
        if pred.shape != target.shape or pred.size(-1) != 3:
            raise ValueError('expected (M, 3) pred and target, got '
                             f'{tuple(pred.shape)} and {tuple(target.shape)}')
        if avg_factor is None:
            avg_factor = max(pred.size(0), 1)
        loss = (pred - target).abs().sum() / avg_factor
        return self.loss_weight * loss

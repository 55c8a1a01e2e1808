"""Segment-level fusion of the predictions of several augmented views.

Queries are not aligned across views: query 7 of the flipped image need not
describe the object of query 7 of the original. Views are therefore fused
at the level of segments. Every view's candidates (soft mask in the
original frame, score, class) are pooled, candidates that describe the same
segment are grouped (:func:`cluster_view_segments`) and each group becomes
one candidate whose soft mask and score are the means of its members'
(:func:`fuse_clusters`). Mask-wise merging then paints the fused candidates.

With a single view no two candidates can be grouped, so the fused
candidates are the view's own candidates, bit for bit.
"""
from typing import Optional

import torch
from torch import Tensor


def cluster_view_segments(mask_probs: Tensor,
                          scores: Tensor,
                          labels: Tensor,
                          view_ids: Tensor,
                          iou_thr: float = 0.5,
                          mask_thr: float = 0.5) -> Tensor:
    """Group the candidates of several views that describe one segment.

    Greedy, in order of descending score (stable): a candidate joins the
    group whose leader (its first, highest-scored member) has the same
    class, comes from another view than every member of the group, and
    whose binary mask overlaps the candidate's with IoU ``> iou_thr`` (two
    empty masks have IoU 1); of several such groups the one of largest
    IoU. Otherwise the candidate
    leads a new group. A group therefore holds at most one candidate per
    view, and candidates of one view are never grouped together (their
    overlaps are for mask-wise merging to resolve, as without TTA).

    Args:
        mask_probs (Tensor): Soft masks in [0, 1], shape (M, H, W), all in
            the frame of the original image.
        scores (Tensor): Scores, shape (M, ).
        labels (Tensor): Classes, long, shape (M, ).
        view_ids (Tensor): View each candidate comes from, long, shape
            (M, ), values in ``[0, num_views)``.
        iou_thr (float): Grouping threshold on the IoU of the binary masks.
            Defaults to 0.5.
        mask_thr (float): Binarisation threshold (``> mask_thr``).
            Defaults to 0.5.

    Returns:
        Tensor: Group index of each candidate, long, shape (M, ). Groups
        are numbered in the order of their leaders' positions in the input,
        so with one view the result is ``arange(M)``.
    """
    num = mask_probs.size(0)
    if mask_probs.dim() != 3 or scores.shape != (num, ) or \
            labels.shape != (num, ) or view_ids.shape != (num, ):
        raise ValueError(
            'expected mask_probs (M, H, W) and scores, labels, view_ids (M, '
            f'), got {tuple(mask_probs.shape)}, {tuple(scores.shape)}, '
            f'{tuple(labels.shape)}, {tuple(view_ids.shape)}')
    device = mask_probs.device
    if num == 0:
        return torch.zeros(0, dtype=torch.long, device=device)
    binary = (mask_probs > mask_thr).flatten(1).float()
    areas = binary.sum(1)
    inter = binary @ binary.t()
    union = areas[:, None] + areas[None, :] - inter
    # Two empty masks are the same (empty) segment.
    iou = torch.where(union > 0, inter / union.clamp(min=1),
                      torch.ones_like(union))

    num_views = int(view_ids.max()) + 1
    leader_of = torch.full((num, ), -1, dtype=torch.long, device=device)
    leaders = torch.zeros(num, dtype=torch.long, device=device)
    has_view = torch.zeros((num, num_views), dtype=torch.bool, device=device)
    num_groups = 0
    order = torch.sort(scores, descending=True, stable=True).indices
    for index in order.tolist():
        group = -1
        if num_groups:
            heads = leaders[:num_groups]
            overlap = iou[heads, index]
            fits = (labels[heads] == labels[index]) & \
                ~has_view[:num_groups, view_ids[index]] & (overlap > iou_thr)
            if fits.any():
                group = int(torch.where(fits, overlap, -1.0).argmax())
        if group < 0:
            group = num_groups
            leaders[group] = index
            num_groups += 1
        leader_of[index] = leaders[group]
        has_view[group, view_ids[index]] = True
    # Renumber the groups by their leaders' input positions.
    _, group_ids = torch.unique(leader_of, sorted=True, return_inverse=True)
    return group_ids


def fuse_clusters(values: Tensor,
                  group_ids: Tensor,
                  divisor: Optional[int] = None) -> Tensor:
    """Reduce per-candidate values to per-group values.

    Args:
        values (Tensor): Shape (M, ...), e.g. soft masks (M, H, W) or scores
            (M, ).
        group_ids (Tensor): Output of :func:`cluster_view_segments`, (M, ).
        divisor (int, optional): None: the mean over a group's members.
            Otherwise the sum over the members divided by ``divisor``, e.g.
            the number of views, so that a view missing the segment counts
            as a zero.

    Returns:
        Tensor: Shape (G, ...), G the number of groups.
    """
    if values.size(0) != group_ids.numel():
        raise ValueError(f'got {values.size(0)} values for '
                         f'{group_ids.numel()} group ids')
    num_groups = int(group_ids.max()) + 1 if group_ids.numel() else 0
    sums = values.new_zeros((num_groups, *values.shape[1:]))
    sums.index_add_(0, group_ids, values)
    if divisor is None:
        counts = torch.bincount(group_ids, minlength=num_groups)
        counts = counts.to(values.dtype).view(-1, *[1] * (values.dim() - 1))
        return sums / counts
    return sums / divisor

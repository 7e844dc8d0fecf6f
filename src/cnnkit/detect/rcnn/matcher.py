"""Matching of anchors/proposals to ground-truth boxes and balanced sampling (torchvision's Matcher and
BalancedPositiveNegativeSampler, as the RPN and the Fast R-CNN head use them)."""

from __future__ import annotations

import torch
from torch import Tensor

BELOW_LOW = -1   # IoU below the background threshold: a negative
BETWEEN = -2     # IoU between the two thresholds: ignored


def match(iou: Tensor, high: float, low: float, allow_low_quality: bool) -> Tensor:
    """The ground-truth index of every prediction, or BELOW_LOW / BETWEEN.

    Args:
        iou: Tensor[G, N] IoU of G ground-truth boxes with N predictions (anchors or proposals).
        high: IoU at or above which a prediction is a positive.
        low: IoU below which it is a negative.
        allow_low_quality: also match each ground truth to the predictions of highest IoU with it (ties kept),
            even below `high` (Faster R-CNN's RPN: a small object still gets an anchor).

    Returns:
        Tensor[N] int64.
    """
    n = iou.shape[1]
    if iou.shape[0] == 0:  # an image without objects: everything is background
        return torch.full((n,), BELOW_LOW, dtype=torch.int64, device=iou.device)
    best, idx = iou.max(dim=0)
    out = idx.clone()
    out[best < low] = BELOW_LOW
    out[(best >= low) & (best < high)] = BETWEEN
    if allow_low_quality:
        per_gt = iou.max(dim=1, keepdim=True).values
        _, pred = torch.nonzero((iou == per_gt) & (per_gt > 0), as_tuple=True)
        out[pred] = idx[pred]
    return out


def sample(labels: Tensor, batch_size: int, positive_fraction: float, generator=None) -> tuple[Tensor, Tensor]:
    """Random positives (label >= 1) up to `positive_fraction` of `batch_size`, negatives (label 0) fill the rest.

    Args:
        labels: Tensor[N] int64: >= 1 positive, 0 negative, -1 ignored.

    Returns:
        (positive indices, negative indices), Tensor[P] and Tensor[Q] int64.
    """
    pos = torch.nonzero(labels >= 1).flatten()
    neg = torch.nonzero(labels == 0).flatten()
    n_pos = min(int(batch_size * positive_fraction), pos.numel())
    n_neg = min(batch_size - n_pos, neg.numel())
    pos = pos[torch.randperm(pos.numel(), device=pos.device, generator=generator)[:n_pos]]
    neg = neg[torch.randperm(neg.numel(), device=neg.device, generator=generator)[:n_neg]]
    return pos, neg

"""Proposal recall: the fraction of ground-truth boxes covered (IoU >= threshold) by the first n proposals."""

from __future__ import annotations

import numpy as np
import torch

from cnnkit.ops import box_iou


def proposal_recall(proposals: list[torch.Tensor], gt_boxes: list[torch.Tensor], counts=(1, 10, 50, 100, 200, 500),
                    iou_threshold: float = 0.5) -> dict[int, float]:
    """Recall at IoU `iou_threshold` of the first n proposals of each image, for each n in `counts`.

    Args:
        proposals: per image Tensor[P_i, 4] xyxy, best first.
        gt_boxes: per image Tensor[G_i, 4] xyxy (images without objects count nothing).

    Returns:
        {n: recall in [0, 1]} (nan when there is no ground truth at all).
    """
    best = []  # per gt box: the rank of the first proposal covering it (inf: none)
    for props, gt in zip(proposals, gt_boxes, strict=True):
        if len(gt) == 0:
            continue
        if len(props) == 0:
            best.extend([np.inf] * len(gt))
            continue
        hit = box_iou(gt.float(), props.float()) >= iou_threshold          # (G, P)
        first = torch.where(hit.any(1), hit.float().argmax(1).float(), torch.tensor(float("inf")))
        best.extend(first.tolist())
    ranks = np.asarray(best)
    if ranks.size == 0:
        return {int(n): float("nan") for n in counts}
    return {int(n): float((ranks < n).mean()) for n in counts}

"""Segmentation metrics from one confusion matrix: pixel accuracy, per-class IoU, mean IoU, Dice.

`confusion_matrix(pred, target, num_classes)` counts pixels (rows: true class, columns: predicted), leaving out
`ignore_index` pixels; everything else is arithmetic on it, so a `SegmentationMeter` only sums matrices over
batches (and over processes under DDP).

Conventions: a class that appears neither in the target nor in the prediction has IoU/Dice NaN and is left out of
the means (as torchmetrics' and mmseg's "absent class" handling); an all-correct prediction scores 1.0.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from cnnkit.segment.losses import IGNORE_INDEX


def confusion_matrix(pred: torch.Tensor, target: torch.Tensor, num_classes: int, *,
                     ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """Pixel counts: (num_classes, num_classes) int64, entry [t, p] = pixels of true class t predicted p.

    Args:
        pred: (...) predicted class ids (e.g. logits.argmax(1)).
        target: (...) true class ids, same shape; `ignore_index` pixels are not counted.
        num_classes: C; a target id outside [0, C) other than ignore_index raises ValueError.
    """
    if pred.shape != target.shape:
        raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} differ in shape")
    keep = target != ignore_index
    t, p = target[keep].long(), pred[keep].long()
    if t.numel() and (int(t.min()) < 0 or int(t.max()) >= num_classes):
        raise ValueError(f"target holds class id {int(t.max()) if int(t.max()) >= num_classes else int(t.min())}, "
                         f"outside 0..{num_classes - 1} (and not the ignore value {ignore_index})")
    return torch.bincount(t * num_classes + p, minlength=num_classes**2).reshape(num_classes, num_classes).cpu()


def scores_from_confusion(cm: torch.Tensor) -> dict[str, Any]:
    """pixel_accuracy, per-class iou / dice / accuracy (recall), miou, mdice, mean_accuracy, freq_weighted_iou.

    Per-class lists hold None where the class is absent from both target and prediction; means skip those.
    """
    cm = cm.double()
    tp = cm.diag()
    gt, pr = cm.sum(1), cm.sum(0)
    union = gt + pr - tp
    iou = torch.where(union > 0, tp / union.clamp(min=1), torch.nan)
    dice = torch.where(gt + pr > 0, 2 * tp / (gt + pr).clamp(min=1), torch.nan)
    recall = torch.where(gt > 0, tp / gt.clamp(min=1), torch.nan)
    total = cm.sum()
    freq = gt / total if total > 0 else gt
    present = ~torch.isnan(iou)

    def _mean(v: torch.Tensor) -> float:
        ok = ~torch.isnan(v)
        return float(v[ok].mean()) if ok.any() else math.nan

    def _list(v: torch.Tensor) -> list[float | None]:
        return [None if math.isnan(x) else float(x) for x in v.tolist()]

    return {
        "pixel_accuracy": float(tp.sum() / total) if total > 0 else math.nan,
        "miou": _mean(iou),
        "mdice": _mean(dice),
        "mean_accuracy": _mean(recall),
        "freq_weighted_iou": float((freq[present] * iou[present]).sum()) if total > 0 else math.nan,
        "iou": _list(iou),
        "dice": _list(dice),
        "class_accuracy": _list(recall),
    }


class SegmentationMeter:
    """Accumulates a confusion matrix (and the mean loss, when given a loss function) over batches.

    Args:
        num_classes: C.
        loss_fn: optional callable (logits, target) -> (loss, parts) or loss, averaged over the images (each
            batch weighs its size).
        ignore_index: target value that never counts.
        class_names: names for the report (optional).

    `update(logits (B, C, H, W), target (B, H, W))`; `compute()` gives `scores_from_confusion` plus
    "confusion_matrix" (list of lists), "loss" (when loss_fn), "n" (images) and "classes".
    """

    def __init__(self, num_classes: int, *, loss_fn=None, ignore_index: int = IGNORE_INDEX,
                 class_names: list[str] | None = None) -> None:
        self.num_classes, self.loss_fn, self.ignore_index = num_classes, loss_fn, ignore_index
        self.class_names = list(class_names) if class_names else None
        self.cm = torch.zeros(num_classes, num_classes, dtype=torch.int64)
        self.loss_sum = torch.zeros((), dtype=torch.float64)
        self.n = torch.zeros((), dtype=torch.int64)

    def update(self, outputs: torch.Tensor, targets: torch.Tensor) -> None:
        if outputs.shape[1] != self.num_classes:
            raise ValueError(f"the model gives {outputs.shape[1]} class scores, the data has {self.num_classes} "
                             f"classes")
        self.cm += confusion_matrix(outputs.argmax(1), targets, self.num_classes, ignore_index=self.ignore_index)
        if self.loss_fn is not None:
            loss = self.loss_fn(outputs, targets)
            loss = loss[0] if isinstance(loss, tuple) else loss
            self.loss_sum += float(loss) * len(targets)
        self.n += len(targets)

    def all_reduce(self) -> None:
        import torch.distributed as tdist

        if tdist.is_available() and tdist.is_initialized():
            for t in (self.cm, self.loss_sum, self.n):
                buf = t.clone()
                tdist.all_reduce(buf)
                t.copy_(buf)

    def compute(self) -> dict[str, Any]:
        out = scores_from_confusion(self.cm)
        out["confusion_matrix"] = self.cm.tolist()
        out["n"] = int(self.n)
        if self.loss_fn is not None and int(self.n):
            out["loss"] = float(self.loss_sum) / int(self.n)
        if self.class_names:
            out["classes"] = self.class_names
        return out

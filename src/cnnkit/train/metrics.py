"""Classification metrics: accuracy, top-k, per-class accuracy and the confusion matrix.

Everything derives from two counters that add up across batches and processes: the confusion matrix
(rows: true class, columns: predicted class) and the number of top-k hits. So a metric computed batch by
batch, or on each rank and all-reduced, equals the metric computed on all predictions at once.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from cnnkit.errors import InputError


def confusion_matrix(preds: torch.Tensor, targets: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Count (true, predicted) pairs.

    Args:
        preds: Tensor[N] of predicted class indices.
        targets: Tensor[N] of true class indices in [0, num_classes).
        num_classes: C.

    Returns:
        Tensor[C, C] int64; entry [t, p] counts samples of class t predicted as p.
    """
    idx = targets.long().reshape(-1) * num_classes + preds.long().reshape(-1)
    return torch.bincount(idx, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def topk_correct(scores: torch.Tensor, targets: torch.Tensor, k: int) -> int:
    """How many rows of `scores` (N, C) hold their target among the k largest; k is capped at C."""
    k = min(k, scores.shape[1])
    top = scores.topk(k, dim=1).indices  # (N, k)
    return int((top == targets.reshape(-1, 1)).any(dim=1).sum())


def per_class_accuracy(confusion: torch.Tensor) -> list[float | None]:
    """Recall of each class (diagonal over row sums); None for a class with no samples."""
    totals = confusion.sum(dim=1).tolist()
    hits = confusion.diagonal().tolist()
    return [h / t if t else None for h, t in zip(hits, totals, strict=True)]


class ClassificationMeter:
    """Accumulates predictions batch by batch; `compute()` gives the metrics dict.

    Args:
        num_classes: C, the number of scores per sample.
        topk: the k of the top-k accuracy (reported as "top5" when k is 5).
    """

    def __init__(self, num_classes: int, topk: int = 5):
        self.num_classes = num_classes
        self.topk = topk
        self.confusion = torch.zeros(num_classes, num_classes, dtype=torch.int64)
        self.topk_hits = 0
        self.loss_sum = 0.0  # sum of per-sample losses, so batches of any size average correctly
        self.has_loss = False
        self.n = 0

    def update(self, scores: torch.Tensor, targets: torch.Tensor, loss_sum: float | None = None) -> None:
        """Add a batch.

        Args:
            scores: Tensor[N, C] of logits or probabilities (only their order matters).
            targets: Tensor[N] of class indices.
            loss_sum: the batch's summed loss, when a loss is tracked.
        """
        scores = scores.detach().float().cpu()
        targets = targets.detach().long().cpu()
        if scores.ndim != 2 or scores.shape[1] != self.num_classes:
            raise InputError(f"expected scores of shape (N, {self.num_classes}), got {tuple(scores.shape)}")
        if targets.numel() and (int(targets.min()) < 0 or int(targets.max()) >= self.num_classes):
            raise InputError(
                f"a label ({int(targets.max())}) lies outside the model's {self.num_classes} classes; "
                "the data has more classes than the model predicts"
            )
        self.confusion += confusion_matrix(scores.argmax(dim=1), targets, self.num_classes)
        self.topk_hits += topk_correct(scores, targets, self.topk)
        self.n += int(targets.numel())
        if loss_sum is not None:
            self.loss_sum += float(loss_sum)
            self.has_loss = True

    def all_reduce(self) -> None:
        """Sum the counters over the processes of a torch.distributed group (no-op when there is none)."""
        from cnnkit.train import distributed

        if distributed.world_size() == 1:
            return
        flat = torch.cat([self.confusion.reshape(-1).double(),
                          torch.tensor([self.topk_hits, self.loss_sum, self.n, float(self.has_loss)],
                                       dtype=torch.float64)])
        flat = distributed.all_reduce_sum(flat)
        c = self.num_classes
        self.confusion = flat[: c * c].round().long().reshape(c, c)
        self.topk_hits = int(round(flat[-4].item()))
        self.loss_sum = float(flat[-3])
        self.n = int(round(flat[-2].item()))
        self.has_loss = bool(flat[-1] > 0)

    def compute(self) -> dict[str, Any]:
        """The metrics as plain Python values (JSON-able).

        Returns:
            accuracy, top5 (top-k with k = self.topk), per_class_accuracy (list, None where a class has no
            sample), confusion_matrix (list of lists, rows = true class), loss (mean, NaN when not tracked),
            n (samples seen).
        """
        n = self.n
        correct = int(self.confusion.diagonal().sum())
        key = "top5" if self.topk == 5 else f"top{self.topk}"
        return {
            "accuracy": correct / n if n else math.nan,
            key: self.topk_hits / n if n else math.nan,
            "per_class_accuracy": per_class_accuracy(self.confusion),
            "confusion_matrix": self.confusion.tolist(),
            "loss": self.loss_sum / n if n and self.has_loss else math.nan,
            "n": n,
        }


def classification_metrics(scores: torch.Tensor, targets: torch.Tensor, *, topk: int = 5,
                           loss_sum: float | None = None) -> dict[str, Any]:
    """All metrics of `ClassificationMeter.compute` for one tensor of scores (N, C) and targets (N)."""
    meter = ClassificationMeter(scores.shape[1], topk=topk)
    meter.update(scores, targets, loss_sum)
    return meter.compute()

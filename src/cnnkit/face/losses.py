"""The triplet loss and the miners that pick triplets inside a batch.

    loss(A, P, N) = max(d(f(A), f(P)) - d(f(A), f(N)) + alpha, 0),   d = squared Euclidean distance

summed over the triplets (the curriculum's form; `reduction="mean"` makes the learning rate independent of
the batch). A miner looks at the embeddings and identities of a batch and returns the triplets as index
tensors (anchor, positive, negative), computed under `no_grad`; the loss then takes gradients through the
embeddings at those indices only. The distance is injected: `SquaredL2` (the curriculum's), `L2` or `Cosine`.
"""

from __future__ import annotations

import torch
import torch.nn as nn

Triplets = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


# ------------------------------------------------------------------------------------------------ distances
class SquaredL2:
    """d(x, y) = ||x - y||^2."""

    def pairwise(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """x (N, D), y (M, D) -> (N, M)."""
        d = (x * x).sum(1)[:, None] - 2 * x @ y.T + (y * y).sum(1)[None, :]
        return d.clamp_min(0)  # rounding can dip below zero on the diagonal

    def rowwise(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """x (N, D), y (N, D) -> (N,), computed directly (exact gradients at zero distance)."""
        return ((x - y) ** 2).sum(1)


class L2(SquaredL2):
    """d(x, y) = ||x - y||."""

    def pairwise(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return super().pairwise(x, y).sqrt()

    def rowwise(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return (super().rowwise(x, y) + 1e-12).sqrt()  # the epsilon keeps the gradient finite at zero


class Cosine:
    """d(x, y) = 1 - cos(x, y)."""

    def pairwise(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return 1 - nn.functional.normalize(x, dim=1) @ nn.functional.normalize(y, dim=1).T

    def rowwise(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return 1 - nn.functional.cosine_similarity(x, y, dim=1)


DISTANCES = {"squared_l2": SquaredL2, "l2": L2, "cosine": Cosine}


# --------------------------------------------------------------------------------------------------- miners
def _masks(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, B) boolean masks: positive pairs (same identity, not the same image), negative pairs."""
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    return same & ~eye, ~same


class AllTripletsMiner:
    """Every valid triplet of the batch: anchor and positive of one identity (two images), negative of another.

    Args:
        active_only: keep only triplets with a positive loss (d(a,p) - d(a,n) + margin > 0).
        margin: the margin that `active_only` uses.
        distance: distance used by `active_only`.
    """

    def __init__(self, active_only: bool = False, margin: float = 0.2, distance=None):
        self.active_only, self.margin, self.distance = active_only, margin, distance or SquaredL2()

    @torch.no_grad()
    def __call__(self, embeddings: torch.Tensor, labels: torch.Tensor) -> Triplets:
        pos, neg = _masks(labels)
        valid = pos[:, :, None] & neg[:, None, :]  # (B, B, B): [a, p, n]
        self.last_valid = int(valid.sum())  # before the active filter: the loss reports the active share of these
        if self.active_only:
            d = self.distance.pairwise(embeddings, embeddings)
            valid &= d[:, :, None] - d[:, None, :] + self.margin > 0
        a, p, n = valid.nonzero(as_tuple=True)
        return a, p, n


class BatchHardMiner:
    """For each anchor, its farthest positive and its nearest negative (Hermans et al., 2017).

    Anchors without a positive or without a negative in the batch are left out.
    """

    def __init__(self, distance=None):
        self.distance = distance or SquaredL2()

    @torch.no_grad()
    def __call__(self, embeddings: torch.Tensor, labels: torch.Tensor) -> Triplets:
        pos, neg = _masks(labels)
        d = self.distance.pairwise(embeddings, embeddings)
        keep = pos.any(1) & neg.any(1)
        p = d.masked_fill(~pos, float("-inf")).argmax(1)
        n = d.masked_fill(~neg, float("inf")).argmin(1)
        a = keep.nonzero(as_tuple=True)[0]
        return a, p[a], n[a]


class SemiHardMiner:
    """For each (anchor, positive) pair, the nearest negative farther than the positive (FaceNet's semi-hard).

    Semi-hard negatives satisfy d(a,p) < d(a,n): they still violate the margin (when d(a,n) < d(a,p) + margin)
    without being the hardest, which early in training are mostly mislabelled or degenerate. A pair with no
    negative farther than its positive takes its farthest negative (as TensorFlow Addons' semi-hard loss does).
    """

    def __init__(self, distance=None):
        self.distance = distance or SquaredL2()

    @torch.no_grad()
    def __call__(self, embeddings: torch.Tensor, labels: torch.Tensor) -> Triplets:
        pos, neg = _masks(labels)
        d = self.distance.pairwise(embeddings, embeddings)
        a, p = pos.nonzero(as_tuple=True)
        dap = d[a, p][:, None]  # (T, 1)
        dan = d[a]  # (T, B)
        farther = neg[a] & (dan > dap)
        semi = dan.masked_fill(~farther, float("inf")).argmin(1)
        fallback = dan.masked_fill(~neg[a], float("-inf")).argmax(1)
        has_neg = neg[a].any(1)
        n = torch.where(farther.any(1), semi, fallback)
        return a[has_neg], p[has_neg], n[has_neg]


MINERS = {"all": AllTripletsMiner, "batch_hard": BatchHardMiner, "semi_hard": SemiHardMiner}


# ----------------------------------------------------------------------------------------------------- loss
def triplet_loss(anchor: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor, *, margin: float = 0.2,
                 distance=None, reduction: str = "sum") -> torch.Tensor:
    """max(d(A, P) - d(A, N) + margin, 0) over triplets given as rows.

    Args:
        anchor, positive, negative: (T, D) embeddings.
        margin: alpha.
        distance: an object with `rowwise(x, y) -> (T,)`; default squared Euclidean.
        reduction: "sum" (the curriculum's), "mean", or "none" for the (T,) per-triplet losses.

    Returns:
        A scalar, or (T,) with reduction "none". No triplets give 0 (with a gradient path).
    """
    distance = distance or SquaredL2()
    per = (distance.rowwise(anchor, positive) - distance.rowwise(anchor, negative) + margin).clamp_min(0)
    return reduce(per, reduction)


def reduce(per: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "none":
        return per
    if reduction == "sum":
        return per.sum()
    if reduction == "mean":
        return per.mean() if per.numel() else per.sum()
    raise ValueError(f"reduction must be 'sum', 'mean' or 'none', got {reduction!r}")


class TripletLoss(nn.Module):
    """Triplet loss over the triplets a miner picks in the batch.

    Args:
        margin: alpha.
        miner: "batch_hard", "semi_hard", "all", or a miner object; default semi-hard.
        distance: "squared_l2", "l2", "cosine", or a distance object.
        reduction: "sum", "mean" or "none".

    After each call, `last_stats` holds {"triplets": T, "active": triplets with a positive loss}; with a miner
    that keeps only active triplets, T counts every valid triplet it looked at.
    """

    def __init__(self, margin: float = 0.2, miner="semi_hard", distance="squared_l2", reduction: str = "sum"):
        super().__init__()
        self.distance = DISTANCES[distance]() if isinstance(distance, str) else distance
        self.miner = MINERS[miner](distance=self.distance) if isinstance(miner, str) else miner
        self.margin, self.reduction = margin, reduction
        self.last_stats: dict[str, float] = {}

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """embeddings (B, D), labels (B,) -> the reduced loss."""
        a, p, n = self.miner(embeddings, labels)
        per = triplet_loss(embeddings[a], embeddings[p], embeddings[n], margin=self.margin,
                           distance=self.distance, reduction="none")
        valid = getattr(self.miner, "last_valid", None) if getattr(self.miner, "active_only", False) else None
        self.last_stats = {"triplets": float(len(per) if valid is None else valid), "active": float((per > 0).sum())}
        out = reduce(per, self.reduction)
        return out + 0.0 * embeddings.sum() if len(per) == 0 else out  # keep the graph when nothing was mined

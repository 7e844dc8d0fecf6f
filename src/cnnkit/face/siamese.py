"""Face verification as binary classification of pairs (the curriculum's second way to train an encoder).

    y_hat = sigmoid(sum_k w_k |f(x_i)_k - f(x_j)_k| + b)                       (`SiameseHead`, "l1")
    y_hat = sigmoid(sum_k w_k (f(x_i)_k - f(x_j)_k)^2 / (f(x_i)_k + f(x_j)_k) + b)   (the chi-square variant)

Both encoders share weights (it is one `f`); the head learns which coordinates matter. The chi-square form
needs non-negative features; unit embeddings can be negative, so its denominator here is |f_i| + |f_j| + eps
(equal to DeepFace's for non-negative features). `batch_pairs` turns a P x K batch into same/different pairs.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class SiameseHead(nn.Module):
    """Logit of "same identity" for pairs of embeddings.

    Args:
        dim: embedding width.
        variant: "l1" (|f_i - f_j|) or "chi2" ((f_i - f_j)^2 / (|f_i| + |f_j|)).
    """

    def __init__(self, dim: int, variant: str = "l1"):
        super().__init__()
        if variant not in ("l1", "chi2"):
            raise ValueError(f"variant must be 'l1' or 'chi2', got {variant!r}")
        self.variant = variant
        self.linear = nn.Linear(dim, 1)
        # start as "closer is more alike": negative weights on the differences, a positive bias
        nn.init.constant_(self.linear.weight, -1.0)
        nn.init.constant_(self.linear.bias, 1.0)

    def features(self, fi: torch.Tensor, fj: torch.Tensor) -> torch.Tensor:
        """(P, D), (P, D) -> (P, D) per-coordinate differences the linear layer weighs."""
        if self.variant == "l1":
            return (fi - fj).abs()
        return (fi - fj) ** 2 / (fi.abs() + fj.abs() + 1e-6)

    def forward(self, fi: torch.Tensor, fj: torch.Tensor) -> torch.Tensor:
        """Logits (P,); sigmoid of them is the probability that the pair shows one identity."""
        return self.linear(self.features(fi, fj)).squeeze(1)


def batch_pairs(labels: torch.Tensor, *, balance: bool = True,
                generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Pairs (i < j) of a batch with their target: 1 for the same identity, 0 for different.

    Args:
        labels: (B,) identities.
        balance: keep as many different pairs as same pairs (drawn at random), since a P x K batch has
            far more different pairs (P = 16, K = 4: 96 same, 1,920 different).
        generator: for the random choice of different pairs.

    Returns:
        i, j (P,) int64 indices and target (P,) float.
    """
    i, j = torch.triu_indices(len(labels), len(labels), offset=1, device=labels.device)
    same = labels[i] == labels[j]
    if balance:
        pos, neg = same.nonzero(as_tuple=True)[0], (~same).nonzero(as_tuple=True)[0]
        keep = torch.randperm(len(neg), generator=generator, device="cpu")[: max(len(pos), 1)].to(neg.device)
        sel = torch.cat([pos, neg[keep]])
        i, j, same = i[sel], j[sel], same[sel]
    return i, j, same.float()


class SiameseLoss(nn.Module):
    """Binary cross-entropy of the head's verdict on the pairs of a batch (the head is trained along).

    After each call `last_stats` holds {"pairs": P, "correct": pairs judged right at probability 0.5}.
    """

    def __init__(self, dim: int, variant: str = "l1", balance: bool = True):
        super().__init__()
        self.head = SiameseHead(dim, variant)
        self.balance = balance
        self.last_stats: dict[str, float] = {}

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        i, j, target = batch_pairs(labels, balance=self.balance)
        logits = self.head(embeddings[i], embeddings[j])
        self.last_stats = {"pairs": float(len(target)), "correct": float(((logits > 0).float() == target).sum())}
        return F.binary_cross_entropy_with_logits(logits, target)

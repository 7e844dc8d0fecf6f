"""Per-pixel losses for semantic segmentation: cross-entropy, Dice and their sum.

All take `logits: Tensor[B, C, H, W]` (unnormalised class scores) and `target: Tensor[B, H, W]` int64 class ids,
where `ignore_index` (255) marks pixels that never count, and return a scalar (the batch mean).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

IGNORE_INDEX = 255


def _check(logits: torch.Tensor, target: torch.Tensor) -> None:
    if logits.dim() != 4 or target.dim() != 3 or logits.shape[0] != target.shape[0] \
            or logits.shape[-2:] != target.shape[-2:]:
        raise ValueError(f"expected logits (B, C, H, W) and target (B, H, W) of the same size, got "
                         f"{tuple(logits.shape)} and {tuple(target.shape)}")


def cross_entropy(logits: torch.Tensor, target: torch.Tensor, *, weight: torch.Tensor | None = None,
                  ignore_index: int = IGNORE_INDEX, label_smoothing: float = 0.0) -> torch.Tensor:
    """Mean cross-entropy over the pixels that are not `ignore_index`; `weight` (C,) weighs each class (the mean
    is then weighted too, as in PyTorch). 0 when every pixel is ignored."""
    _check(logits, target)
    if not (target != ignore_index).any():
        return logits.sum() * 0.0  # keeps the graph (and DDP's gradient hooks) alive
    return F.cross_entropy(logits, target, weight=weight, ignore_index=ignore_index, label_smoothing=label_smoothing)


def dice_loss(logits: torch.Tensor, target: torch.Tensor, *, ignore_index: int = IGNORE_INDEX,
              smooth: float = 1.0, weight: torch.Tensor | None = None) -> torch.Tensor:
    """1 - soft Dice, averaged over the classes present in the target or predicted (over the whole batch).

    Per class c: Dice_c = (2 * sum(p_c * y_c) + smooth) / (sum(p_c) + sum(y_c) + smooth), with p the softmax
    probabilities and y the one-hot target over the non-ignored pixels. Classes with no pixel in the target and
    (almost) no predicted probability score Dice 1 thanks to `smooth`, so they neither help nor hurt much.
    `weight` (C,) averages the classes with these weights instead of equally.
    """
    _check(logits, target)
    num_classes = logits.shape[1]
    valid = (target != ignore_index).unsqueeze(1)  # (B, 1, H, W)
    probs = logits.float().softmax(dim=1) * valid
    onehot = F.one_hot(target.clamp(0, num_classes - 1) * valid[:, 0], num_classes).permute(0, 3, 1, 2) * valid
    dims = (0, 2, 3)
    inter = (probs * onehot).sum(dims)
    denom = probs.sum(dims) + onehot.sum(dims)
    dice = (2 * inter + smooth) / (denom + smooth)  # (C,)
    if weight is None:
        return 1.0 - dice.mean()
    weight = weight.to(dice)
    return 1.0 - (dice * weight).sum() / weight.sum()


class SegmentationLoss(nn.Module):
    """`ce_weight * cross-entropy + dice_weight * Dice loss`, the usual mix: cross-entropy trains every pixel,
    Dice keeps small classes from drowning in the background.

    Args:
        ce_weight: factor of the cross-entropy (0: Dice only).
        dice_weight: factor of the Dice loss (0: cross-entropy only).
        class_weights: (C,) class weights for both terms, or None.
        ignore_index: target value of pixels that never count.
        label_smoothing: cross-entropy label smoothing.

    Returns from `forward`: (total, {"ce": ..., "dice": ...}) with the parts as floats for logging.
    """

    def __init__(self, *, ce_weight: float = 1.0, dice_weight: float = 1.0, class_weights: torch.Tensor | None = None,
                 ignore_index: int = IGNORE_INDEX, label_smoothing: float = 0.0) -> None:
        super().__init__()
        if ce_weight < 0 or dice_weight < 0 or ce_weight + dice_weight == 0:
            raise ValueError(f"loss weights must be >= 0 and not both 0, got {ce_weight}, {dice_weight}")
        self.ce_weight, self.dice_weight = ce_weight, dice_weight
        self.ignore_index, self.label_smoothing = ignore_index, label_smoothing
        self.register_buffer("class_weights", None if class_weights is None
                             else torch.as_tensor(class_weights, dtype=torch.float32))

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        parts: dict[str, float] = {}
        total = logits.new_zeros(())
        w = None if self.class_weights is None else self.class_weights.to(logits.device)
        if self.ce_weight:
            ce = cross_entropy(logits, target, weight=w, ignore_index=self.ignore_index,
                               label_smoothing=self.label_smoothing)
            total = total + self.ce_weight * ce
            parts["ce"] = float(ce.detach())
        if self.dice_weight:
            dice = dice_loss(logits, target, ignore_index=self.ignore_index, weight=w)
            total = total + self.dice_weight * dice
            parts["dice"] = float(dice.detach())
        return total, parts

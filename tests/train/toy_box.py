"""The toy box-regression task the task-loop tests train: one box per image, smooth-L1 on its corners, mean IoU.

A module of its own (not a test file), so that test_task_loop.py and test_cli_tasks.py share one registration
of the task: a test file imported twice (as a test and by a sibling) would register it twice.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import Dataset

from cnnkit.tasks import Task, register_task
from cnnkit.train import distributed as dist

SIZE = 16  # images are SIZE x SIZE, one bright square per image


# -- the toy task: one box per image, smooth-L1 on its corners, mean IoU -----------------------------------------

class Squares(Dataset):
    """Images (1, 16, 16) with one bright square of side 3..7 at a random place; target {"boxes": (1, 4) xyxy}."""

    def __init__(self, n: int, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        self.items = []
        for _ in range(n):
            side = int(torch.randint(3, 8, (1,), generator=g))
            x0, y0 = (int(v) for v in torch.randint(0, SIZE - side + 1, (2,), generator=g))
            img = 0.1 * torch.randn(1, SIZE, SIZE, generator=g)
            img[0, y0:y0 + side, x0:x0 + side] += 1.0
            box = torch.tensor([[x0, y0, x0 + side, y0 + side]], dtype=torch.float32)
            self.items.append((img, {"boxes": box, "labels": torch.zeros(1, dtype=torch.int64)}))

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def box_iou_pairs(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """IoU of a[i] with b[i], boxes (N, 4) xyxy (vectorised; checked against `_iou_by_hand`)."""
    lt, rb = torch.max(a[:, :2], b[:, :2]), torch.min(a[:, 2:], b[:, 2:])
    inter = (rb - lt).clamp(min=0).prod(dim=1)
    area_a = (a[:, 2:] - a[:, :2]).clamp(min=0).prod(dim=1)
    area_b = (b[:, 2:] - b[:, :2]).clamp(min=0).prod(dim=1)
    return inter / (area_a + area_b - inter).clamp_min(1e-9)


def _iou_by_hand(p, t) -> float:
    w = max(0.0, min(p[2], t[2]) - max(p[0], t[0]))
    h = max(0.0, min(p[3], t[3]) - max(p[1], t[1]))
    inter = w * h
    union = max(0.0, p[2] - p[0]) * max(0.0, p[3] - p[1]) + (t[2] - t[0]) * (t[3] - t[1]) - inter
    return inter / union if union > 0 else 0.0


class MeanIoUMeter:
    """Sums of IoU, smooth-L1 and samples; they add up over batches and ranks."""

    def __init__(self):
        self.sums = torch.zeros(3, dtype=torch.float64)  # IoU sum, loss sum, n

    def update(self, outputs, targets) -> None:
        want = torch.stack([t["boxes"][0] for t in targets])
        pred = outputs.detach().float()
        loss = F.smooth_l1_loss(pred, want, reduction="none").mean(dim=1)
        self.sums += torch.tensor([float(box_iou_pairs(pred, want).sum()), float(loss.sum()), len(targets)],
                                  dtype=torch.float64)

    def all_reduce(self) -> None:
        self.sums = dist.all_reduce_sum(self.sums)

    def compute(self):
        n = int(self.sums[2])
        return {"miou": float(self.sums[0]) / n if n else math.nan,
                "loss": float(self.sums[1]) / n if n else math.nan, "n": n}


@register_task
class ToyBoxTask(Task):
    """Detection-style targets: the collation keeps a list of target dicts (any number of boxes per image)."""

    name = "toy_box"
    best_metric = "miou"
    main_train_stat = "iou"

    def collate(self, samples):
        return torch.stack([s[0] for s in samples]), [s[1] for s in samples]

    def loss(self, outputs, targets):
        want = torch.stack([t["boxes"][0] for t in targets])
        loss = F.smooth_l1_loss(outputs.float(), want)
        return loss, {"l1": float((outputs.detach() - want).abs().mean())}

    def train_stats(self, outputs, targets):
        want = torch.stack([t["boxes"][0] for t in targets])
        return {"iou": float(box_iou_pairs(outputs.float(), want).sum())}

    def meter(self, model, data):
        return MeanIoUMeter()


class BoxNet(nn.Module):
    """A tiny conv net predicting one box (x1, y1, x2, y2) in pixels."""

    task = "toy_box"

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                                      nn.Conv2d(8, 8, 3, padding=1, stride=2), nn.ReLU())
        self.dropout = nn.Dropout(0.1)  # draws from the global RNG every step: resume must restore it
        self.head = nn.Linear(8 * 8 * 8, 4)

    def forward(self, x):
        return self.head(self.dropout(self.features(x).flatten(1))) * SIZE / 2 + SIZE / 2

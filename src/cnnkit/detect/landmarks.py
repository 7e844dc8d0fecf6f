"""Landmark detection: a network regressing (l_x, l_y) for K points of the object in the image (the curriculum's
eye corners and mouth of a face; here the four corners of a scene's object).

Landmarks must keep the same identity in every image ("landmark 0 is the top-left corner"). A left-right mirror
therefore moves the points *and* swaps the identities of left/right pairs: the mirrored top-left corner is the
new top-right one. `HorizontalFlipLandmarks` does both; the pairs come from the data (`flip_pairs`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
import torch.nn as nn
from torch import Tensor

if TYPE_CHECKING:  # cnnkit.models imports this module: no runtime import back
    from cnnkit.models.backbone import Backbone

from cnnkit.augment import functional as AF
from cnnkit.augment.sample import Sample
from cnnkit.augment.transforms import Transform


def swap_pairs(points: Tensor, pairs: Sequence[tuple[int, int]]) -> Tensor:
    """Points (..., K, 2) with the landmarks of every pair (i, j) exchanged (the identities a mirror swaps)."""
    perm = list(range(points.shape[-2]))
    for i, j in pairs:
        perm[i], perm[j] = perm[j], perm[i]
    return points[..., perm, :]


def mirror_landmarks(points: Tensor, width: float, pairs: Sequence[tuple[int, int]]) -> Tensor:
    """Landmarks of the left-right mirrored image: x -> width - x, then the pairs swapped. Points (..., K, 2)."""
    out = points.clone()
    out[..., 0] = width - out[..., 0]
    return swap_pairs(out, pairs)


class HorizontalFlipLandmarks(Transform):
    """Mirror left-right with probability p, swapping the landmarks of each pair in `pairs` (a plain
    `HorizontalFlip` moves the points but keeps their identities, so "top-left" would end up on the right)."""

    def __init__(self, pairs: Sequence[tuple[int, int]], *, p: float = 0.5, seed: int = 0):
        super().__init__(p=p, seed=seed)
        self.pairs = tuple(tuple(pair) for pair in pairs)

    def apply(self, sample: Sample, params: dict) -> Sample:
        out = AF.hflip(sample)
        if out.landmarks is not None and self.pairs:
            out = out.replace(landmarks=swap_pairs(out.landmarks, self.pairs))
        return out


def encode_landmarks(targets: list[dict], image_size: tuple[int, int]) -> Tensor:
    """Per image the landmarks of its largest object as fractions of the image: Tensor (N, K, 2) (x / W, y / H);
    NaN for an image without objects (ignored by the loss)."""
    h, w = image_size
    rows = []
    k = next((t["keypoints"].shape[-2] for t in targets if len(t["boxes"])), 0)
    for t in targets:
        boxes = t["boxes"].reshape(-1, 4)
        if not len(boxes):
            rows.append(torch.full((k, 2), float("nan")))
            continue
        j = int(((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])).argmax())
        rows.append(t["keypoints"][j].float().cpu() / torch.tensor([w, h], dtype=torch.float32))
    return torch.stack(rows) if rows else torch.zeros(0, k, 2)


def landmark_loss(output: Tensor, y: Tensor) -> tuple[Tensor, dict[str, float]]:
    """Mean squared error over the images that have landmarks (NaN rows skipped), summed over the K x 2 numbers.

    Args:
        output: Tensor (N, K, 2) predicted fractions.
        y: Tensor (N, K, 2) from `encode_landmarks`.
    """
    valid = ~torch.isnan(y).any(-1).any(-1)
    if not valid.any():
        zero = output.sum() * 0
        return zero, {"mse": 0.0}
    loss = ((output[valid] - y[valid]) ** 2).sum((1, 2)).mean()
    return loss, {"mse": float(loss.detach())}


def soft_argmax(heatmaps: Tensor, offsets: Tensor | None = None) -> Tensor:
    """Expected (x, y) of each heatmap under its softmax, as fractions of the map: (N, K, h, w) -> (N, K, 2).

    A differentiable argmax: the network regresses each landmark's (l_x, l_y) as the centre of mass of a map it
    predicts, so every position of the feature map learns the same "is the landmark here?" detector
    (convolutions share weights), instead of a fully connected layer learning each position separately.

    Args:
        heatmaps: Tensor (N, K, h, w) of logits.
        offsets: optional Tensor (N, K, 2, h, w): where inside each cell the landmark lies, in cells (x then y),
            averaged with the same weights (the sub-cell precision a coarse map lacks, as YOLO's cell offsets).
    """
    n, k, h, w = heatmaps.shape
    p = torch.softmax(heatmaps.flatten(2), -1).view(n, k, h, w)
    xs = (torch.arange(w, device=heatmaps.device, dtype=p.dtype) + 0.5) / w
    ys = (torch.arange(h, device=heatmaps.device, dtype=p.dtype) + 0.5) / h
    out = torch.stack([(p.sum(2) * xs).sum(-1), (p.sum(3) * ys).sum(-1)], -1)
    if offsets is not None:
        scale = torch.tensor([1.0 / w, 1.0 / h], device=heatmaps.device, dtype=p.dtype)
        out = out + (p[:, :, None] * offsets).sum((-1, -2)) * scale
    return out


class LandmarkNet(nn.Module):
    """A zoo backbone with a landmark head: output (N, K, 2) of (x, y) as fractions of the image.

    The head turns the feature map of `stage` into K heatmaps and 2K cell offsets (a 3x3 convolution, then a 1x1
    one) and returns the heatmaps' `soft_argmax` corrected by the offsets they weigh.

    Args:
        backbone: any zoo Backbone.
        num_landmarks: K.
        stage: index into forward_stages read by the head.
    """

    task = "landmarks"

    def __init__(self, backbone: Backbone, *, num_landmarks: int = 4, stage: int = -1,
                 input_size: tuple[int, int, int] = (3, 128, 128)) -> None:
        super().__init__()
        self.backbone = backbone
        self.num_landmarks = num_landmarks
        self.stage = stage % len(backbone.stage_channels)
        self.default_input_size = tuple(input_size)
        c = backbone.stage_channels[self.stage]
        self.head = nn.Sequential(nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(inplace=True),
                                  nn.Conv2d(c, 3 * num_landmarks, 1))

    def forward(self, x: Tensor) -> Tensor:
        out = self.head(self.backbone.forward_stages(x)[self.stage]).float()  # (N, 3K, h, w)
        n, _, h, w = out.shape
        k = self.num_landmarks
        offsets = torch.tanh(out[:, k:].view(n, k, 2, h, w))  # within +-1 cell of the cell's centre
        return soft_argmax(out[:, :k], offsets)

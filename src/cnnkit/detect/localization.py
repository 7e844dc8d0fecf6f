"""Classification with localisation: one object per image, the curriculum's target

    y = (p_c, b_x, b_y, b_h, b_w, c_1, ..., c_n)

p_c = 1 when the image holds an object, (b_x, b_y) its midpoint and (b_h, b_w) its height and width as
fractions of the image (so (0.5, 0.5) is the centre and 1 the whole side), c_k = 1 for its class. The loss is
the curriculum's: logistic loss on p_c; where an object is present (p_c = 1), squared error on the four box
numbers and softmax cross-entropy on the classes; where there is none, the rest of y is "don't care".
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

if TYPE_CHECKING:  # cnnkit.models imports this module: no runtime import back
    from cnnkit.models.backbone import Backbone



def encode_localization(targets: list[dict], image_size: tuple[int, int], num_classes: int) -> Tensor:
    """The curriculum's y for a batch of detection targets (the largest object when an image has several).

    Args:
        targets: per image {"boxes" Tensor (n, 4) xyxy pixels, "labels" Tensor (n,)}.
        image_size: (H, W) of the images.
        num_classes: n of c_1..c_n.

    Returns:
        Tensor (N, 5 + num_classes): (p_c, b_x, b_y, b_h, b_w, one-hot classes); zeros after p_c = 0.
    """
    h, w = image_size
    y = torch.zeros(len(targets), 5 + num_classes)
    for i, t in enumerate(targets):
        boxes = t["boxes"].reshape(-1, 4).float().cpu()
        if not len(boxes):
            continue
        area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        j = int(area.argmax())
        x1, y1, x2, y2 = boxes[j].tolist()
        y[i, :5] = torch.tensor([1.0, (x1 + x2) / 2 / w, (y1 + y2) / 2 / h, (y2 - y1) / h, (x2 - x1) / w])
        y[i, 5 + int(t["labels"].reshape(-1)[j])] = 1.0
    return y


def decode_localization(y: Tensor, image_size: tuple[int, int]) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Network output or target (N, 5 + C), with b_* as fractions -> (p_c (N,), boxes (N, 4) xyxy pixels,
    labels (N,), class probabilities (N, C)); an output's p_c and classes are logits, a target's are not."""
    h, w = image_size
    bx, by, bh, bw = y[:, 1], y[:, 2], y[:, 3], y[:, 4]
    boxes = torch.stack([(bx - bw / 2) * w, (by - bh / 2) * h, (bx + bw / 2) * w, (by + bh / 2) * h], -1)
    probs = y[:, 5:]
    return y[:, 0], boxes, probs.argmax(-1), probs


def localization_loss(output: Tensor, y: Tensor, *, box_weight: float = 5.0) -> tuple[Tensor, dict[str, float]]:
    """The curriculum's loss, averaged over the batch.

    Args:
        output: Tensor (N, 5 + C): p_c logit, the 4 box numbers (already squashed to [0, 1] by the head), class
            logits.
        y: Tensor (N, 5 + C) from `encode_localization`.
        box_weight: weight of the box's squared error (its values are fractions, small next to the
            cross-entropies; YOLOv1's lambda_coord is 5).

    Returns:
        (scalar loss, {"pc", "box", "cls"} batch means).
    """
    present = y[:, 0] > 0.5
    n = len(y)
    l_pc = F.binary_cross_entropy_with_logits(output[:, 0], y[:, 0], reduction="sum")
    l_box = ((output[present, 1:5] - y[present, 1:5]) ** 2).sum()
    l_cls = F.cross_entropy(output[present, 5:], y[present, 5:].argmax(-1), reduction="sum")
    total = (l_pc + box_weight * l_box + l_cls) / n
    return total, {"pc": float(l_pc.detach()) / n, "box": float(box_weight * l_box.detach()) / n,
                   "cls": float(l_cls.detach()) / n}


class SpatialHead(nn.Module):
    """Regression from a feature map that keeps *where* things are: a 1x1 convolution to a few channels, adaptive
    pooling to a fixed grid, flatten, one hidden layer. (Global average pooling, a classifier's head, throws
    away the position a box or a landmark needs.)

    Shapes:
        (N, in_channels, h, w) -> (N, out_features).
    """

    def __init__(self, in_channels: int, out_features: int, *, reduce: int = 32, grid: int = 8, hidden: int = 256):
        super().__init__()
        self.reduce = nn.Sequential(nn.Conv2d(in_channels, reduce, 1, bias=False), nn.BatchNorm2d(reduce),
                                    nn.ReLU(inplace=True))
        self.pool = nn.AdaptiveAvgPool2d(grid)
        self.fc = nn.Sequential(nn.Flatten(), nn.Linear(reduce * grid * grid, hidden), nn.ReLU(inplace=True),
                                nn.Linear(hidden, out_features))

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.pool(self.reduce(x)))


class LocalizationNet(nn.Module):
    """A zoo backbone with the localisation head: output (N, 5 + C) = (p_c logit, b_x, b_y, b_h, b_w, class logits),
    the four box numbers through a sigmoid (fractions of the image).

    p_c and the box come from the spatial head (a box is a position); the class from globally pooled features, as a
    classifier's head does (what an object is does not depend on where it is, and a pooled feature learns it once
    instead of once per position).

    Args:
        backbone: any zoo Backbone; `stage` picks which of its `forward_stages` the head reads.
        num_classes: object classes.
        stage: index into forward_stages (default: the last).
    """

    task = "localization"

    def __init__(self, backbone: Backbone, *, num_classes: int, stage: int = -1,
                 input_size: tuple[int, int, int] = (3, 128, 128)) -> None:
        super().__init__()
        self.backbone = backbone
        self.num_classes = num_classes
        self.stage = stage % len(backbone.stage_channels)
        self.default_input_size = tuple(input_size)
        channels = backbone.stage_channels[self.stage]
        self.head = SpatialHead(channels, 5)
        self.classifier = nn.Linear(channels, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        feats = self.backbone.forward_stages(x)[self.stage]
        out = self.head(feats)  # (N, 5): p_c logit and the box before its sigmoid
        cls = self.classifier(feats.mean((2, 3)))  # (N, C)
        return torch.cat([out[:, :1], torch.sigmoid(out[:, 1:5]), cls], 1)

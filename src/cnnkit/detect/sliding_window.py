"""Sliding-window detection, naive and convolutional (OverFeat, Sermanet et al. 2014).

Naive: cut a window at every position (a stride apart, at one or several sizes), classify each crop with a
trained classifier, keep the windows classified as an object, and remove duplicates with NMS. Every window
recomputes the convolutions of the pixels it shares with its neighbours.

Convolutional: write the classifier's fully connected layers as convolutions (an FC on a 5x5x16 volume is a
5x5 convolution with as many filters as the FC has units; the next FCs are 1x1 convolutions) and run the
network once on the whole image. Each position of the output map is the prediction for one window: the
curriculum's 14x14x3 -> 1x1x4 network run on a 16x16x3 image gives 2x2x4, the four 14x14 windows at stride 2.
The window stride is the network's total stride (the product of its strides and pool sizes). The two give the
same numbers for every window as long as the network's convolutions are "valid" (no padding): a padded
convolution sees zeros at a window's border but the neighbouring pixels in the whole image.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from cnnkit.errors import InputError


class WindowClassifier(nn.Module):
    """A small ConvNet classifying fixed-size windows: valid convolutions and max pools (`features`), then
    fully connected layers (`classifier`, starting with Flatten).

    Args:
        window: side of the square windows it classifies.
        convs: (out_channels, kernel_size) or (out_channels, kernel_size, pool) of each valid convolution; each is
            followed by ReLU and, unless pool is False, a 2x2 max pool.
        hidden: units of the hidden fully connected layers.
        num_classes: outputs (class 0 is "background" by the convention of `detect_windows`).
        in_chans: image channels.

    Shapes:
        (N, in_chans, window, window) -> (N, num_classes).
    """

    def __init__(self, *, window: int = 14, convs: Sequence[tuple[int, int]] = ((16, 5),),
                 hidden: Sequence[int] = (400, 400), num_classes: int = 4, in_chans: int = 3) -> None:
        super().__init__()
        layers, c, side = [], in_chans, window
        for out, k, *pool in convs:
            pool = pool[0] if pool else True
            layers += [nn.Conv2d(c, out, k), nn.ReLU(inplace=True)] + ([nn.MaxPool2d(2)] if pool else [])
            c, side = out, (side - k + 1) // (2 if pool else 1)
        if side < 1:
            raise InputError(f"window {window} is too small for these convolutions")
        self.window = window
        self.features = nn.Sequential(*layers)
        fcs: list[nn.Module] = [nn.Flatten()]
        width = c * side * side
        for h in hidden:
            fcs += [nn.Linear(width, h), nn.ReLU(inplace=True)]
            width = h
        fcs.append(nn.Linear(width, num_classes))
        self.classifier = nn.Sequential(*fcs)
        self.num_classes = num_classes

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x))


def course_window_net(num_classes: int = 4) -> WindowClassifier:
    """The curriculum's network: 14x14x3 -> CONV 5x5 (16) -> 10x10x16 -> MAX POOL 2x2 -> 5x5x16 -> FC 400 -> FC 400
    -> FC 4 (softmax)."""
    return WindowClassifier(window=14, convs=((16, 5),), hidden=(400, 400), num_classes=num_classes)


def window_net32(num_classes: int = 6) -> WindowClassifier:
    """A 32x32 window classifier of total stride 4 (windows 4 pixels apart): 32x32x3 -> CONV 5x5 (16) -> POOL ->
    14x14x16 -> CONV 3x3 (32) -> POOL -> 6x6x32 -> CONV 3x3 (32) -> 4x4x32 -> FC 64 -> FC num_classes.

    The convolutions hold most of the work of one window (1.6 M multiply-adds against 33 k for the FCs), which is
    the share the convolutional form computes once for all windows instead of once per window."""
    return WindowClassifier(window=32, convs=((16, 5), (32, 3), (32, 3, False)), hidden=(64,), num_classes=num_classes)


def network_stride(features: nn.Module) -> int:
    """Total stride of a stack of convolutions and pools: the step between two windows of the convolutional form."""
    stride = 1
    for m in features.modules():
        if isinstance(m, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)):
            s = m.stride if isinstance(m.stride, int) else m.stride[0]
            stride *= s
    return stride


def to_convolutional(model: WindowClassifier) -> nn.Sequential:
    """The same network with its fully connected layers turned into convolutions (weights copied, not retrained).

    The first Linear reads a flattened (C, k, k) volume: its weight (out, C * k * k) reshaped to (out, C, k, k) is
    a k x k convolution computing the same sums (PyTorch flattens channel-major, the layout of a conv weight).
    Each later Linear (out, in) is a 1x1 convolution (out, in, 1, 1).

    Returns:
        nn.Sequential mapping (N, C, H, W) -> (N, num_classes, (H - window) / stride + 1, (W - window) / stride + 1).
    """
    with torch.no_grad():
        probe = model.features(torch.zeros(1, _in_channels(model), model.window, model.window))
    c, k = probe.shape[1], probe.shape[-1]
    layers = list(model.features)
    first = True
    for m in model.classifier:
        if isinstance(m, nn.Flatten):
            continue
        if isinstance(m, nn.Linear):
            if first:
                conv = nn.Conv2d(c, m.out_features, k)
                conv.weight.data.copy_(m.weight.data.view(m.out_features, c, k, k))
                first = False
            else:
                conv = nn.Conv2d(m.in_features, m.out_features, 1)
                conv.weight.data.copy_(m.weight.data.view(m.out_features, m.in_features, 1, 1))
            conv.bias.data.copy_(m.bias.data)
            layers.append(conv)
        else:
            layers.append(m)  # activations and dropout work on any shape
    return nn.Sequential(*layers)


def _in_channels(model: WindowClassifier) -> int:
    return next(m for m in model.features.modules() if isinstance(m, nn.Conv2d)).in_channels


def window_positions(size: tuple[int, int], window: int, stride: int) -> Tensor:
    """Top-left corners (y, x) of every window of side `window` a `stride` apart inside an image of `size` (H, W),
    row by row: Tensor (rows * cols, 2)."""
    h, w = size
    if window > min(h, w):
        raise InputError(f"the window ({window}) is larger than the image ({h}x{w})")
    ys = torch.arange(0, h - window + 1, stride)
    xs = torch.arange(0, w - window + 1, stride)
    return torch.cartesian_prod(ys, xs)


@torch.no_grad()
def naive_sliding_window(model: nn.Module, image: Tensor, *, window: int, stride: int, input_size: int | None = None,
                         batch_size: int = 256) -> tuple[Tensor, Tensor]:
    """Classify every window of `image` separately.

    Args:
        model: classifier of (N, C, s, s) crops, s = `input_size` (default `window`); crops of another size are
            resized to s (how several window sizes share one classifier).
        image: Tensor (C, H, W).
        window: side of the windows in the image.
        stride: step between windows.
        input_size: side the classifier expects (default: `window`).
        batch_size: crops per forward pass (1: one window at a time, the textbook loop).

    Returns:
        (logits Tensor (rows, cols, num_classes), boxes Tensor (rows, cols, 4) xyxy pixels of each window).
    """
    h, w = image.shape[-2:]
    pos = window_positions((h, w), window, stride)
    rows = (h - window) // stride + 1
    cols = (w - window) // stride + 1
    size = input_size or window
    outs = []
    for start in range(0, len(pos), batch_size):
        crops = torch.stack([image[:, y:y + window, x:x + window] for y, x in pos[start:start + batch_size].tolist()])
        if size != window:
            crops = F.interpolate(crops, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
        outs.append(model(crops))
    logits = torch.cat(outs).view(rows, cols, -1)
    return logits, _window_boxes(pos, window).view(rows, cols, 4)


@torch.no_grad()
def convolutional_sliding_window(conv_model: nn.Module, image: Tensor, *, window: int, stride: int,
                                 input_size: int | None = None) -> tuple[Tensor, Tensor]:
    """Every window's prediction from one pass of the convolutional form (`to_convolutional`).

    Args:
        conv_model: the convolutional network; its total stride `stride` fixes the window step.
        image: Tensor (C, H, W).
        window: side of the windows in the image; another size than the network's `input_size` rescales the
            image by input_size / window first (a window of `window` pixels becomes one of `input_size`).
        stride: the network's total stride, in pixels of the network's input (`network_stride`).
        input_size: the window side the network was trained on (default `window`).

    Returns:
        (logits Tensor (rows, cols, num_classes), boxes Tensor (rows, cols, 4) xyxy pixels in `image`).
    """
    size = input_size or window
    x = image[None]
    scale = size / window
    if size != window:
        h, w = image.shape[-2:]
        x = F.interpolate(x, size=(round(h * scale), round(w * scale)), mode="bilinear", align_corners=False,
                          antialias=True)
    logits = conv_model(x)[0].permute(1, 2, 0)  # (rows, cols, num_classes)
    rows, cols = logits.shape[:2]
    ys = torch.arange(rows) * stride / scale
    xs = torch.arange(cols) * stride / scale
    pos = torch.cartesian_prod(ys, xs)
    return logits, _window_boxes(pos, window).view(rows, cols, 4)


def _window_boxes(pos: Tensor, window: float) -> Tensor:
    pos = pos.float()
    return torch.stack([pos[:, 1], pos[:, 0], pos[:, 1] + window, pos[:, 0] + window], -1)


def detect_windows(logits: Tensor, boxes: Tensor, *, score_threshold: float = 0.5, iou_threshold: float = 0.3,
                   background: int = 0) -> dict[str, Tensor]:
    """The windows classified as an object (not `background`) with probability >= score_threshold, after NMS.

    Args:
        logits: Tensor (..., num_classes) of every window (any leading shape, e.g. several window sizes
            concatenated).
        boxes: Tensor (..., 4) xyxy of the same windows.

    Returns:
        {"boxes" (k, 4), "scores" (k,), "labels" (k,)} best first.
    """
    from cnnkit.ops import batched_nms  # lazy: another room's module

    probs = torch.softmax(logits.reshape(-1, logits.shape[-1]), -1)
    probs[:, background] = 0
    scores, labels = probs.max(-1)
    keep = scores >= score_threshold
    b, s, lab = boxes.reshape(-1, 4)[keep], scores[keep], labels[keep]
    order = batched_nms(b, s, lab, iou_threshold)
    return {"boxes": b[order], "scores": s[order], "labels": lab[order]}


def output_grid(size: tuple[int, int], window: int, stride: int) -> tuple[int, int]:
    """(rows, cols) of windows: floor((H - window) / stride) + 1 each way."""
    return (math.floor((size[0] - window) / stride) + 1, math.floor((size[1] - window) / stride) + 1)

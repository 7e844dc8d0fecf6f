"""YOLO targets: which cell and anchor answer for each object, and the numbers they should predict.

An object belongs to the cell holding its midpoint, and to the anchor of that cell whose shape (width, height)
has the highest IoU with the object's box (the curriculum's rule, YOLOv2's). The anchor is asked for
`(x_off, y_off, log(h / anchor_h), log(w / anchor_w))`, x_off = cx / stride - col in [0, 1) being what
sigmoid(t_x) must equal. If two objects pick the same cell and anchor (rare with several anchors), the second
takes the best anchor of that cell still free, instead of overwriting the first (darknet keeps only the last,
silently losing an object); with every anchor taken it is dropped and counted in `dropped`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from cnnkit.detect.yolo.anchors_kmeans import anchor_iou


def encode_boxes(boxes: Tensor, anchor_wh: Tensor, stride: float) -> tuple[Tensor, Tensor]:
    """Boxes as a cell plus offsets relative to that cell and to one anchor each.

    Args:
        boxes: Tensor (N, 4) in (x1, y1, x2, y2) pixels, positive width and height.
        anchor_wh: Tensor (N, 2) the (width, height) of the anchor each box is encoded against, in pixels.
        stride: pixels per grid cell.

    Returns:
        (cells Tensor (N, 2) int64 (row, col), offsets Tensor (N, 4) (x_off, y_off, t_h, t_w)) with
        x_off = cx / stride - col, t_h = log(h / anchor_h), t_w = log(w / anchor_w).
    """
    cx = (boxes[:, 0] + boxes[:, 2]) / 2 / stride
    cy = (boxes[:, 1] + boxes[:, 3]) / 2 / stride
    w = boxes[:, 2] - boxes[:, 0]
    h = boxes[:, 3] - boxes[:, 1]
    col, row = cx.floor(), cy.floor()
    offsets = torch.stack([cx - col, cy - row, torch.log(h / anchor_wh[:, 1]), torch.log(w / anchor_wh[:, 0])], -1)
    return torch.stack([row, col], -1).long(), offsets


def decode_boxes(cells: Tensor, offsets: Tensor, anchor_wh: Tensor, stride: float) -> Tensor:
    """Inverse of `encode_boxes`: (row, col) cells, (x_off, y_off, t_h, t_w) offsets -> Tensor (N, 4) xyxy pixels.

    Broadcasts: cells (..., 2), offsets (..., 4), anchor_wh (..., 2) -> (..., 4).
    """
    cx = (cells[..., 1] + offsets[..., 0]) * stride
    cy = (cells[..., 0] + offsets[..., 1]) * stride
    h = anchor_wh[..., 1] * torch.exp(offsets[..., 2])
    w = anchor_wh[..., 0] * torch.exp(offsets[..., 3])
    return torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], -1)


@dataclass
class YoloTargets:
    """What the loss compares the raw output (N, S_h, S_w, B, 5 + C) with.

    Attributes:
        obj: bool Tensor (N, S_h, S_w, B): the anchor is responsible for an object.
        offsets: Tensor (N, S_h, S_w, B, 4) (x_off, y_off, t_h, t_w) where `obj`, 0 elsewhere.
        boxes: Tensor (N, S_h, S_w, B, 4) the responsible object's box xyxy pixels where `obj`.
        labels: int64 Tensor (N, S_h, S_w, B) the object's class where `obj`, -1 elsewhere.
        coord_scale: Tensor (N, S_h, S_w, B) YOLOv2's 2 - w h / (W H): small boxes weigh more.
        gt_boxes: per image, Tensor (n_i, 4) all its boxes (for the "ignore" rule of the loss).
        dropped: objects that found no free anchor in their cell.
    """

    obj: Tensor
    offsets: Tensor
    boxes: Tensor
    labels: Tensor
    coord_scale: Tensor
    gt_boxes: list[Tensor]
    dropped: int = 0


def build_targets(targets: list[dict], anchors: Tensor, stride: int, grid: tuple[int, int],
                  image_size: tuple[int, int] | None = None) -> YoloTargets:
    """Assign every object to a cell and an anchor and compute what that anchor must predict.

    Args:
        targets: one dict per image with "boxes" Tensor (n, 4) xyxy pixels and "labels" Tensor (n,) int64.
            Boxes of zero width or height are skipped (they hold nothing to detect).
        anchors: Tensor (B, 2) anchor (width, height) in pixels.
        stride: pixels per cell.
        grid: (S_h, S_w).
        image_size: (H, W) for the coordinate scale; default grid * stride.

    Returns:
        YoloTargets on the device of `anchors`.
    """
    n, (sh, sw), nb = len(targets), grid, len(anchors)
    height, width = image_size or (sh * stride, sw * stride)
    anchors_np = anchors.detach().cpu().double().numpy()
    obj = np.zeros((n, sh, sw, nb), dtype=bool)
    offsets = np.zeros((n, sh, sw, nb, 4), dtype=np.float32)
    boxes_t = np.zeros((n, sh, sw, nb, 4), dtype=np.float32)
    labels = np.full((n, sh, sw, nb), -1, dtype=np.int64)
    scale = np.zeros((n, sh, sw, nb), dtype=np.float32)
    gt_boxes, dropped = [], 0
    for i, t in enumerate(targets):
        b = t["boxes"].detach().cpu().double().numpy().reshape(-1, 4)
        lab = t["labels"].detach().cpu().numpy().reshape(-1)
        wh = np.stack([b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]], -1)
        valid = (wh > 0).all(1)
        gt_boxes.append(t["boxes"].detach().reshape(-1, 4)[torch.from_numpy(valid)].float().to(anchors.device))
        b, lab, wh = b[valid], lab[valid], wh[valid]
        if not len(b):
            continue
        cx, cy = (b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2
        cols = np.clip(np.floor(cx / stride), 0, sw - 1).astype(int)  # a midpoint on the far edge stays inside
        rows = np.clip(np.floor(cy / stride), 0, sh - 1).astype(int)
        order = np.argsort(-anchor_iou(wh, anchors_np), axis=1)  # (n, B) anchors from best to worst shape
        for j in range(len(b)):
            r, c = rows[j], cols[j]
            free = [a for a in order[j] if not obj[i, r, c, a]]
            if not free:
                dropped += 1
                continue
            a = free[0]
            aw, ah = anchors_np[a]
            obj[i, r, c, a] = True
            offsets[i, r, c, a] = (cx[j] / stride - c, cy[j] / stride - r, np.log(wh[j, 1] / ah), np.log(wh[j, 0] / aw))
            boxes_t[i, r, c, a] = b[j]
            labels[i, r, c, a] = lab[j]
            scale[i, r, c, a] = 2.0 - wh[j, 0] * wh[j, 1] / (width * height)
    dev = anchors.device
    return YoloTargets(torch.from_numpy(obj).to(dev), torch.from_numpy(offsets).to(dev),
                       torch.from_numpy(boxes_t).to(dev), torch.from_numpy(labels).to(dev),
                       torch.from_numpy(scale).to(dev), gt_boxes, dropped)

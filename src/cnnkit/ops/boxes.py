"""Box arithmetic: format conversion, area, pairwise IoU and GIoU, clipping, small-box removal.

Names and arguments follow torchvision.ops, so code written against it ports unchanged. Boxes are
`Tensor[N, 4]` in (x1, y1, x2, y2) unless a format says otherwise, with x1 <= x2 and y1 <= y2; coordinates
are continuous (a box [0, 0, 2, 2] has area 4), so two boxes that only touch overlap by 0 and their IoU is 0,
as the course states it.
"""

from __future__ import annotations

import torch
from torch import Tensor

from cnnkit.errors import InputError

__all__ = [
    "BOX_FORMATS",
    "box_area",
    "box_convert",
    "box_iou",
    "boxes_to_normalized",
    "boxes_to_pixels",
    "clip_boxes_to_image",
    "generalized_box_iou",
    "remove_small_boxes",
]

BOX_FORMATS = ("xyxy", "xywh", "cxcywh")


def _check_boxes(boxes: Tensor, name: str = "boxes") -> None:
    if boxes.ndim < 1 or boxes.shape[-1] != 4:
        raise InputError(f"{name} must have shape (..., 4), got {tuple(boxes.shape)}")


def box_convert(boxes: Tensor, in_fmt: str, out_fmt: str) -> Tensor:
    """Convert boxes between (x1, y1, x2, y2), (x, y, w, h) and (cx, cy, w, h).

    Args:
        boxes: Tensor[..., 4] in `in_fmt`.
        in_fmt: "xyxy", "xywh" (top-left corner, width, height) or "cxcywh" (centre, width, height).
        out_fmt: one of the same.

    Returns:
        Tensor[..., 4] in `out_fmt`, same dtype. Works alike on pixel and on normalised [0, 1] coordinates.
    """
    for fmt in (in_fmt, out_fmt):
        if fmt not in BOX_FORMATS:
            raise InputError(f"unknown box format {fmt!r}; use one of {', '.join(BOX_FORMATS)}")
    _check_boxes(boxes)
    if in_fmt == out_fmt:
        return boxes.clone()
    a, b, c, d = boxes.unbind(-1)
    if in_fmt == "xywh":
        a, b, c, d = a, b, a + c, b + d
    elif in_fmt == "cxcywh":
        a, b, c, d = a - 0.5 * c, b - 0.5 * d, a + 0.5 * c, b + 0.5 * d
    # now (a, b, c, d) is xyxy
    if out_fmt == "xywh":
        a, b, c, d = a, b, c - a, d - b
    elif out_fmt == "cxcywh":
        a, b, c, d = 0.5 * (a + c), 0.5 * (b + d), c - a, d - b
    return torch.stack((a, b, c, d), dim=-1)


def _size_vector(image_size: tuple[int, int], like: Tensor) -> Tensor:
    if len(image_size) != 2 or min(image_size) <= 0:
        raise InputError(f"image_size must be (height, width) with both > 0, got {tuple(image_size)}")
    h, w = image_size
    return torch.tensor([w, h, w, h], dtype=like.dtype if like.is_floating_point() else torch.float32,
                        device=like.device)


def boxes_to_normalized(boxes: Tensor, image_size: tuple[int, int]) -> Tensor:
    """Pixel boxes to coordinates in [0, 1] (divided by width for x, height for y).

    Args:
        boxes: Tensor[..., 4] in any of the formats of `box_convert` (each coordinate is an x or a y or a size
            along x or y in the order x, y, x, y).
        image_size: (height, width) in pixels.

    Returns:
        Tensor[..., 4], floating point.
    """
    _check_boxes(boxes)
    return boxes / _size_vector(image_size, boxes)


def boxes_to_pixels(boxes: Tensor, image_size: tuple[int, int]) -> Tensor:
    """Normalised [0, 1] boxes (YOLO-style) to pixels; the inverse of `boxes_to_normalized`.

    Args:
        boxes: Tensor[..., 4] in any format of `box_convert`.
        image_size: (height, width) in pixels.

    Returns:
        Tensor[..., 4], floating point.
    """
    _check_boxes(boxes)
    return boxes * _size_vector(image_size, boxes)


def box_area(boxes: Tensor) -> Tensor:
    """Area of each box.

    Args:
        boxes: Tensor[N, 4] in (x1, y1, x2, y2).

    Returns:
        Tensor[N].
    """
    _check_boxes(boxes)
    return (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])


def _box_inter_union(boxes1: Tensor, boxes2: Tensor) -> tuple[Tensor, Tensor]:
    """Pairwise intersection and union areas: two Tensor[N, M]."""
    area1 = box_area(boxes1)
    area2 = box_area(boxes2)
    lt = torch.max(boxes1[:, None, :2], boxes2[None, :, :2])  # (N, M, 2)
    rb = torch.min(boxes1[:, None, 2:], boxes2[None, :, 2:])  # (N, M, 2)
    wh = (rb - lt).clamp(min=0)  # boxes that only touch get width or height 0
    inter = wh[..., 0] * wh[..., 1]
    union = area1[:, None] + area2[None, :] - inter
    return inter, union


def box_iou(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """Intersection over union of every pair of boxes.

    Args:
        boxes1: Tensor[N, 4] in (x1, y1, x2, y2).
        boxes2: Tensor[M, 4] in (x1, y1, x2, y2).

    Returns:
        Tensor[N, M]: IoU in [0, 1]; 0 for boxes that do not overlap or only touch (NaN for two empty boxes).
    """
    _check_boxes(boxes1, "boxes1")
    _check_boxes(boxes2, "boxes2")
    inter, union = _box_inter_union(boxes1, boxes2)
    return inter / union


def generalized_box_iou(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """Generalised IoU (Rezatofighi et al. 2019) of every pair: IoU - (enclosing area - union) / enclosing area.

    Args:
        boxes1: Tensor[N, 4] in (x1, y1, x2, y2).
        boxes2: Tensor[M, 4] in (x1, y1, x2, y2).

    Returns:
        Tensor[N, M] in [-1, 1]; unlike IoU it still tells how far apart two disjoint boxes are.
    """
    _check_boxes(boxes1, "boxes1")
    _check_boxes(boxes2, "boxes2")
    inter, union = _box_inter_union(boxes1, boxes2)
    iou = inter / union
    lti = torch.min(boxes1[:, None, :2], boxes2[None, :, :2])
    rbi = torch.max(boxes1[:, None, 2:], boxes2[None, :, 2:])
    whi = (rbi - lti).clamp(min=0)  # (N, M, 2)
    enclosing = whi[..., 0] * whi[..., 1]
    return iou - (enclosing - union) / enclosing


def clip_boxes_to_image(boxes: Tensor, size: tuple[int, int]) -> Tensor:
    """Clip boxes so they lie inside an image.

    Args:
        boxes: Tensor[..., 4] in (x1, y1, x2, y2).
        size: (height, width) of the image.

    Returns:
        Tensor[..., 4]: x in [0, width], y in [0, height].
    """
    _check_boxes(boxes)
    height, width = size
    x = boxes[..., 0::2].clamp(min=0, max=width)
    y = boxes[..., 1::2].clamp(min=0, max=height)
    return torch.stack((x[..., 0], y[..., 0], x[..., 1], y[..., 1]), dim=-1)


def remove_small_boxes(boxes: Tensor, min_size: float) -> Tensor:
    """Indices of the boxes whose width and height are both at least `min_size`.

    Args:
        boxes: Tensor[N, 4] in (x1, y1, x2, y2).
        min_size: smallest side kept.

    Returns:
        Tensor[K] int64, increasing.
    """
    _check_boxes(boxes)
    ws = boxes[:, 2] - boxes[:, 0]
    hs = boxes[:, 3] - boxes[:, 1]
    return torch.where((ws >= min_size) & (hs >= min_size))[0]

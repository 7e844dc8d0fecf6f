"""Letterboxing: resize keeping the aspect ratio, pad to a square (or to a multiple of a stride), and map back.

    img, info = letterbox(image, 640)                   # image float (C, H, W) -> (C, 640, 640)
    sample, info = letterbox_sample(Sample(image, boxes=b, masks=m), 640)
    boxes_in_original = unletterbox_boxes(pred_boxes, info)

Padding is grey (114/255, as ultralytics pads) around the centred image; masks are padded with `mask_fill`
(0 for instance masks, 255 = "ignore" for semantic maps).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from cnnkit.augment import functional as AF
from cnnkit.augment.sample import Sample
from cnnkit.errors import InputError

PAD_VALUE = 114 / 255


@dataclass(frozen=True)
class LetterboxInfo:
    """How an image was letterboxed: x_out = x_in * scale_x + pad_x (and the same for y).

    Attributes:
        scale_x, scale_y: resize factors (equal up to the rounding of the resized size).
        pad_x, pad_y: pixels added on the left and top.
        in_size: (H, W) of the original image.
        out_size: (H, W) of the letterboxed image.
    """

    scale_x: float
    scale_y: float
    pad_x: int
    pad_y: int
    in_size: tuple[int, int]
    out_size: tuple[int, int]


def letterbox_params(in_size: tuple[int, int], size: int | None = None, *, stride: int | None = None) -> LetterboxInfo:
    """The letterbox of an image of (H, W) = `in_size`.

    Args:
        in_size: (H, W) of the image.
        size: side of the square output; the longer side is resized to it. None keeps the scale 1.
        stride: when given with size=None, pad (H, W) up to multiples of stride instead of to a square.
    """
    h, w = (int(v) for v in in_size)
    if h < 1 or w < 1:
        raise InputError(f"cannot letterbox an empty image of size {h}x{w}")
    if size is not None:
        if size < 1:
            raise InputError(f"letterbox size must be positive, got {size}")
        s = size / max(h, w)
        nh, nw = max(1, round(h * s)), max(1, round(w * s))
        oh = ow = int(size)
    else:
        nh, nw = h, w
        st = int(stride or 1)
        if st < 1:
            raise InputError(f"stride must be positive, got {stride}")
        oh, ow = -(-h // st) * st, -(-w // st) * st
    pad_y, pad_x = (oh - nh) // 2, (ow - nw) // 2
    return LetterboxInfo(nw / w, nh / h, pad_x, pad_y, (h, w), (oh, ow))


def letterbox_sample(
    sample: Sample, size: int | None = None, *, stride: int | None = None, fill: float = PAD_VALUE, mask_fill: int = 0
) -> tuple[Sample, LetterboxInfo]:
    """Letterbox an image with its boxes, masks and landmarks (they move with it)."""
    info = letterbox_params(sample.size, size, stride=stride)
    h, w = info.in_size
    nh, nw = round(h * info.scale_y), round(w * info.scale_x)
    out = AF.resize(sample, (nh, nw))
    oh, ow = info.out_size
    out = AF.crop(out, -info.pad_y, -info.pad_x, oh, ow, fill=fill, mask_fill=mask_fill)
    return out, info


def letterbox(image: Tensor, size: int | None = None, *, stride: int | None = None,
              fill: float = PAD_VALUE) -> tuple[Tensor, LetterboxInfo]:
    """Letterbox a float image (C, H, W) to (C, size, size); returns it with the LetterboxInfo to map back."""
    out, info = letterbox_sample(Sample(image), size, stride=stride, fill=fill)
    return out.image, info


def unletterbox_points(points: Tensor, info: LetterboxInfo) -> Tensor:
    """Points (..., 2) xy in the letterboxed image -> the original image's pixels."""
    pad = torch.tensor([info.pad_x, info.pad_y], dtype=points.dtype, device=points.device)
    scale = torch.tensor([info.scale_x, info.scale_y], dtype=points.dtype, device=points.device)
    return (points - pad) / scale


def unletterbox_boxes(boxes: Tensor, info: LetterboxInfo, *, clip: bool = True) -> Tensor:
    """Boxes (N, 4) xyxy in the letterboxed image -> the original image's pixels (clipped to it by default)."""
    out = unletterbox_points(boxes.reshape(-1, 2, 2), info).reshape(boxes.shape)
    if clip:
        h, w = info.in_size
        out = torch.stack([out[..., 0].clamp(0, w), out[..., 1].clamp(0, h),
                           out[..., 2].clamp(0, w), out[..., 3].clamp(0, h)], -1)
    return out

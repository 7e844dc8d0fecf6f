"""Boxes as offsets from anchors (proposals): the regression targets of R-CNN, SSD and RetinaNet heads.

For an anchor with centre (xa, ya) and size (wa, ha) and a box with centre (x, y) and size (w, h), the code is

    dx = wx (x - xa) / wa,   dy = wy (y - ya) / ha,   dw = ww log(w / wa),   dh = wh log(h / ha),

with torchvision's weights (wx, wy, ww, wh): (10, 10, 5, 5) for Fast R-CNN heads, (1, 1, 1, 1) for the RPN.
Decoding clamps dw and dh to log(1000 / 16) so one wild prediction cannot overflow exp.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from cnnkit.errors import InputError

__all__ = ["BoxCoder"]


class BoxCoder:
    """Encode boxes relative to reference boxes (anchors) and decode them back, as torchvision's BoxCoder.

    Args:
        weights: (wx, wy, ww, wh) multiplying the four offsets.
        bbox_xform_clip: largest dw, dh used when decoding.
    """

    def __init__(self, weights: tuple[float, float, float, float] = (10.0, 10.0, 5.0, 5.0),
                 bbox_xform_clip: float = math.log(1000.0 / 16)) -> None:
        if len(weights) != 4:
            raise InputError(f"BoxCoder weights must be 4 numbers (wx, wy, ww, wh), got {weights!r}")
        self.weights = tuple(float(w) for w in weights)
        self.bbox_xform_clip = bbox_xform_clip

    def __repr__(self) -> str:
        return f"BoxCoder(weights={self.weights})"

    def encode(self, reference_boxes: Tensor | list[Tensor], proposals: Tensor | list[Tensor]):
        """Offsets of `reference_boxes` (targets) from `proposals` (anchors).

        Args:
            reference_boxes: Tensor[N, 4] xyxy, or a list of them (one per image).
            proposals: same shapes as `reference_boxes`.

        Returns:
            Tensor[N, 4] of (dx, dy, dw, dh), or a tuple of them when lists were given (torchvision's form).
        """
        if isinstance(reference_boxes, list | tuple):
            counts = [len(b) for b in reference_boxes]
            codes = self.encode_single(torch.cat(list(reference_boxes)), torch.cat(list(proposals)))
            return codes.split(counts, 0)
        return self.encode_single(reference_boxes, proposals)

    def encode_single(self, reference_boxes: Tensor, proposals: Tensor) -> Tensor:
        """Offsets of `reference_boxes` Tensor[N, 4] xyxy from `proposals` Tensor[N, 4] xyxy: Tensor[N, 4]."""
        if reference_boxes.shape != proposals.shape:
            raise InputError(f"reference_boxes {tuple(reference_boxes.shape)} and proposals "
                             f"{tuple(proposals.shape)} must have the same shape")
        wx, wy, ww, wh = self.weights
        ex_w = proposals[:, 2] - proposals[:, 0]
        ex_h = proposals[:, 3] - proposals[:, 1]
        ex_cx = proposals[:, 0] + 0.5 * ex_w
        ex_cy = proposals[:, 1] + 0.5 * ex_h
        gt_w = reference_boxes[:, 2] - reference_boxes[:, 0]
        gt_h = reference_boxes[:, 3] - reference_boxes[:, 1]
        gt_cx = reference_boxes[:, 0] + 0.5 * gt_w
        gt_cy = reference_boxes[:, 1] + 0.5 * gt_h
        dx = wx * (gt_cx - ex_cx) / ex_w
        dy = wy * (gt_cy - ex_cy) / ex_h
        dw = ww * torch.log(gt_w / ex_w)
        dh = wh * torch.log(gt_h / ex_h)
        return torch.stack((dx, dy, dw, dh), dim=1)

    def decode(self, rel_codes: Tensor, boxes: Tensor | list[Tensor]) -> Tensor:
        """Boxes from offsets; torchvision's `decode`.

        Args:
            rel_codes: Tensor[N, 4 * K] offsets (K boxes per reference box, e.g. one per class).
            boxes: Tensor[N, 4] xyxy reference boxes, or a list of them (concatenated, one per image).

        Returns:
            Tensor[N, K, 4] xyxy.
        """
        if isinstance(boxes, list | tuple):
            boxes = torch.cat(list(boxes), 0)
        n = boxes.shape[0]
        if n > 0:
            rel_codes = rel_codes.reshape(n, -1)  # as torchvision: codes of all images, one row per box
        return self.decode_single(rel_codes, boxes).reshape(n, -1, 4)

    def decode_single(self, rel_codes: Tensor, boxes: Tensor) -> Tensor:
        """Boxes from offsets `rel_codes` Tensor[N, 4 * K] relative to `boxes` Tensor[N, 4]: Tensor[N, 4 * K]."""
        if rel_codes.shape[0] != boxes.shape[0] or rel_codes.shape[-1] % 4:
            raise InputError(f"rel_codes {tuple(rel_codes.shape)} must be (N, 4*K) for boxes {tuple(boxes.shape)}")
        boxes = boxes.to(rel_codes.dtype)
        wx, wy, ww, wh = self.weights
        widths = boxes[:, 2] - boxes[:, 0]
        heights = boxes[:, 3] - boxes[:, 1]
        ctr_x = boxes[:, 0] + 0.5 * widths
        ctr_y = boxes[:, 1] + 0.5 * heights
        dx = rel_codes[:, 0::4] / wx
        dy = rel_codes[:, 1::4] / wy
        dw = (rel_codes[:, 2::4] / ww).clamp(max=self.bbox_xform_clip)
        dh = (rel_codes[:, 3::4] / wh).clamp(max=self.bbox_xform_clip)
        pred_cx = dx * widths[:, None] + ctr_x[:, None]
        pred_cy = dy * heights[:, None] + ctr_y[:, None]
        half_w = 0.5 * torch.exp(dw) * widths[:, None]
        half_h = 0.5 * torch.exp(dh) * heights[:, None]
        out = torch.stack((pred_cx - half_w, pred_cy - half_h, pred_cx + half_w, pred_cy + half_h), dim=2)
        return out.flatten(1)

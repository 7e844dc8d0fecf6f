"""From the raw YOLO output to detections: decode every anchor's box, score = p_c x class probability, then
a score threshold, per-class non-maximum suppression and a cap on the number of boxes.

The two steps are separate on purpose: `decode_predictions` is pure tensor arithmetic that exports to ONNX with
the network; `postprocess` (threshold + NMS, data-dependent shapes) runs after it, in PyTorch or on the
exported model's outputs.
"""

from __future__ import annotations

import torch
from torch import Tensor


def grid_cells(sh: int, sw: int, device=None) -> Tensor:
    """Tensor (S_h, S_w, 1, 2) of (row, col) of every cell, broadcastable against (N, S_h, S_w, B, ...)."""
    rows = torch.arange(sh, device=device, dtype=torch.float32)
    cols = torch.arange(sw, device=device, dtype=torch.float32)
    return torch.stack(torch.meshgrid(rows, cols, indexing="ij"), -1)[:, :, None, :]


def decode_raw(raw: Tensor, anchors: Tensor, stride: float) -> tuple[Tensor, Tensor, Tensor]:
    """Activations of the raw output, kept on the grid.

    Args:
        raw: Tensor (N, S_h, S_w, B, 5 + C) (t_o, t_x, t_y, t_h, t_w, class logits).
        anchors: Tensor (B, 2) anchor (width, height) in pixels.
        stride: pixels per cell.

    Returns:
        (boxes (N, S_h, S_w, B, 4) xyxy pixels, p_c (N, S_h, S_w, B), class probabilities (N, S_h, S_w, B, C)).
    """
    _, sh, sw, _, _ = raw.shape
    cells = grid_cells(sh, sw, raw.device)  # (S_h, S_w, 1, 2) as (row, col)
    xy = torch.sigmoid(raw[..., 1:3])
    cx = (cells[..., 1] + xy[..., 0]) * stride
    cy = (cells[..., 0] + xy[..., 1]) * stride
    # exp of a clamped log-size: an untrained network's outlier must not overflow to inf
    h = anchors[:, 1] * torch.exp(raw[..., 3].clamp(max=8.0))
    w = anchors[:, 0] * torch.exp(raw[..., 4].clamp(max=8.0))
    boxes = torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], -1)
    return boxes, torch.sigmoid(raw[..., 0]), torch.softmax(raw[..., 5:], -1)


def decode_predictions(raw: Tensor, anchors: Tensor, stride: float) -> tuple[Tensor, Tensor]:
    """Every anchor's box and class scores, flattened.

    Args:
        raw: Tensor (N, S_h, S_w, B, 5 + C).
        anchors: Tensor (B, 2) (width, height) pixels.
        stride: pixels per cell.

    Returns:
        (boxes Tensor (N, S_h * S_w * B, 4) xyxy pixels, scores Tensor (N, S_h * S_w * B, C) = p_c x P(class)).
    """
    boxes, pc, probs = decode_raw(raw, anchors, stride)
    n, c = raw.shape[0], raw.shape[-1] - 5
    return boxes.reshape(n, -1, 4), (pc[..., None] * probs).reshape(n, -1, c)


def postprocess(boxes: Tensor, scores: Tensor, *, score_threshold: float = 0.25, iou_threshold: float = 0.45,
                max_detections: int = 100, image_size: tuple[int, int] | None = None) -> list[dict[str, Tensor]]:
    """Score threshold, per-class NMS and the best `max_detections`, image by image.

    Each (anchor, class) pair whose score reaches the threshold is a candidate, so one anchor may report two
    classes it hesitates between (this raises recall; NMS runs class by class): `cnnkit.ops.filter_detections`
    on the (A, C) scores.

    Args:
        boxes: Tensor (N, A, 4) xyxy pixels.
        scores: Tensor (N, A, C).
        score_threshold: drop candidates scoring below.
        iou_threshold: NMS drops a box overlapping a better one of its class by more than this.
        max_detections: keep at most this many per image (the best scores).
        image_size: (H, W): clip the boxes to the image.

    Returns:
        one dict per image: "boxes" (k, 4), "scores" (k,), "labels" (k,) int64, best score first.
    """
    from cnnkit.ops import clip_boxes_to_image, filter_detections  # lazy: cnnkit.ops is another room's module

    out = []
    for b, s in zip(boxes, scores, strict=True):
        if image_size is not None:
            b = clip_boxes_to_image(b, image_size)
        det = filter_detections(b, s, score_threshold=score_threshold, iou_threshold=iou_threshold,
                                max_detections=max_detections)
        out.append({"boxes": det["boxes"], "scores": det["scores"], "labels": det["labels"]})
    return out

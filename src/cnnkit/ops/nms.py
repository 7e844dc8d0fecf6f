"""Non-maximum suppression: plain, per class (batched), and the score-threshold + top-k post-processing.

The course's rule: drop boxes below a score threshold, then repeatedly keep the best remaining box and remove
every box whose IoU with it is above the IoU threshold, class by class. `nms` and `batched_nms` have
torchvision's names, arguments and results (kept indices by decreasing score; equal scores keep the lower index
first, like a stable sort).

How it is fast without a compiled kernel: greedy NMS is the lexicographically first independent set of the
"IoU > threshold" graph taken in score order. (1) Only pairs that can exceed the threshold are examined: if
IoU > t then the x-overlap is more than t times either width, so sorting by x1 bounds each box's partners to a
window found with one `searchsorted`. (2) The greedy result is then resolved in rounds over the edge list:
a box with no undecided better neighbour is kept and its neighbours are removed, all at once. A few rounds
settle real detections; long chains fall back to a plain loop over the remaining boxes.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from cnnkit.errors import InputError
from cnnkit.ops.boxes import box_iou, remove_small_boxes

__all__ = ["batched_nms", "filter_detections", "nms"]

_MAX_ROUNDS = 12


def _check(boxes: Tensor, scores: Tensor) -> None:
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise InputError(f"boxes must have shape (N, 4), got {tuple(boxes.shape)}")
    if scores.ndim != 1 or scores.shape[0] != boxes.shape[0]:
        raise InputError(f"scores must have shape ({boxes.shape[0]},), got {tuple(scores.shape)}")


def nms(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    """Greedy non-maximum suppression.

    Args:
        boxes: Tensor[N, 4] in (x1, y1, x2, y2), x1 <= x2 and y1 <= y2.
        scores: Tensor[N].
        iou_threshold: boxes with IoU > iou_threshold with a kept, better-scored box are removed.

    Returns:
        Tensor[K] int64: indices of the kept boxes, by decreasing score.
    """
    _check(boxes, scores)
    return _nms(boxes, scores, None, iou_threshold)


def batched_nms(boxes: Tensor, scores: Tensor, idxs: Tensor, iou_threshold: float) -> Tensor:
    """Non-maximum suppression within each category: boxes of different `idxs` never suppress each other.

    The result is exactly that of running `nms` per category and merging (no coordinate-offset trick, whose
    rounding can change which boxes survive).

    Args:
        boxes: Tensor[N, 4] in (x1, y1, x2, y2).
        scores: Tensor[N].
        idxs: Tensor[N] integer category (or image, or both) of each box.
        iou_threshold: IoU above which the lower-scored box of a pair is removed.

    Returns:
        Tensor[K] int64: indices of the kept boxes, by decreasing score.
    """
    _check(boxes, scores)
    if idxs.shape != scores.shape:
        raise InputError(f"idxs must have shape {tuple(scores.shape)}, got {tuple(idxs.shape)}")
    return _nms(boxes, scores, idxs, iou_threshold)


def _nms(boxes: Tensor, scores: Tensor, idxs: Tensor | None, iou_threshold: float) -> Tensor:
    n = boxes.shape[0]
    if n == 0:
        return torch.empty(0, dtype=torch.int64, device=boxes.device)
    iou_threshold = float(iou_threshold)
    if boxes.device.type != "cpu":
        return _nms_dense(boxes, scores, idxs, iou_threshold)
    b = boxes.detach()
    if not b.is_floating_point():
        b = b.float()
    b = b.contiguous().numpy()
    s = scores.detach().float().numpy() if scores.dtype in (torch.float16, torch.bfloat16) else scores.detach().numpy()
    c = None if idxs is None else idxs.detach().to(torch.int64).numpy()
    keep = _nms_numpy(b, s, c, iou_threshold)
    return torch.from_numpy(keep)


def _nms_dense(boxes: Tensor, scores: Tensor, idxs: Tensor | None, t: float) -> Tensor:
    """Device-agnostic version (GPU): full IoU matrix, greedy loop over the sorted boxes."""
    order = torch.sort(scores, descending=True, stable=True)[1]
    b = boxes[order].float()
    over = box_iou(b, b) > t
    if idxs is not None:
        c = idxs[order]
        over &= c[:, None] == c[None, :]
    over = over.cpu().numpy()
    removed = np.zeros(len(b), dtype=bool)
    kept = []
    for i in range(len(b)):
        if not removed[i]:
            kept.append(i)
            removed[i + 1:] |= over[i, i + 1:]
    return order[torch.as_tensor(kept, dtype=torch.int64, device=boxes.device)]


def _nms_numpy(b: np.ndarray, s: np.ndarray, c: np.ndarray | None, t: float) -> np.ndarray:
    """Greedy NMS on NumPy arrays; returns kept indices (int64) by decreasing score."""
    n = len(b)
    order = np.argsort(-s, kind="stable")  # ties: lower index first
    if t < 0:  # every pair "overlaps" by more than t: only each category's best survives
        if c is None:
            return order[:1].astype(np.int64)
        _, first = np.unique(c[order], return_index=True)
        return order[np.sort(first)].astype(np.int64)
    b = b[order]
    x1, y1, x2, y2 = b[:, 0], b[:, 1], b[:, 2], b[:, 3]
    w = x2 - x1
    # Sort key: x1, with categories placed far apart so windows never cross them (float64: exact enough for a
    # window that is only a bound; the IoU itself is computed from the original coordinates below).
    key = x1.astype(np.float64)
    if c is not None:
        c = c[order]
        span = float(np.max(x2) - np.min(x1)) + 1.0 if n else 1.0
        key = key - float(np.min(x1)) + (c - c.min()).astype(np.float64) * (2.0 * span + 1.0)
    xo = np.argsort(key, kind="stable")
    ks = key[xo]
    # Partners of box p (in x order) have key in [key_p, key_p + w_p - t w_p); the slack guards rounding.
    limit = ks + (w[xo].astype(np.float64) * (1.0 - 0.999 * t))
    end = np.searchsorted(ks, limit, side="left")
    start = np.arange(1, n + 1)
    cnt = np.maximum(end - start, 0)
    total = int(cnt.sum())
    if total == 0:
        return order.astype(np.int64)
    rep = np.repeat(np.arange(n), cnt)
    j = np.arange(total) - np.repeat(np.cumsum(cnt) - cnt - start, cnt)
    u, v = xo[rep], xo[j]
    # y-overlap must exceed t times both heights too; cheap pre-filter before the IoU
    iy = np.minimum(y2[u], y2[v]) - np.maximum(y1[u], y1[v])
    ok = iy > 0
    if c is not None:
        ok &= c[u] == c[v]
    u, v, iy = u[ok], v[ok], iy[ok]
    ix = np.minimum(x2[u], x2[v]) - np.maximum(x1[u], x1[v])
    ix = np.maximum(ix, 0)
    inter = ix * iy
    area = w * (y2 - y1)
    iou = inter / (area[u] + area[v] - inter)
    ok = iou > t
    u, v = u[ok], v[ok]
    # edges from the better box (smaller position in score order) to the worse one
    hi, lo = np.minimum(u, v), np.maximum(u, v)
    return order[_greedy_on_edges(n, hi, lo)].astype(np.int64)


def _greedy_on_edges(n: int, hi: np.ndarray, lo: np.ndarray) -> np.ndarray:
    """Positions (in score order) kept by greedy suppression along edges hi -> lo (hi better than lo)."""
    done = np.zeros(n, dtype=bool)
    kept = np.zeros(n, dtype=bool)
    for _ in range(_MAX_ROUNDS):
        if hi.size == 0:
            break
        blocked = np.zeros(n, dtype=bool)
        blocked[lo] = True  # has an undecided better neighbour
        new = ~done & ~blocked
        kept |= new
        done |= new
        done[lo[new[hi]]] = True  # neighbours of newly kept boxes are removed
        live = ~(done[hi] | done[lo])
        hi, lo = hi[live], lo[live]
    if hi.size:  # a long chain: finish with a plain loop over what is left
        order = np.argsort(hi, kind="stable")
        hi, lo = hi[order], lo[order]
        bounds = np.searchsorted(hi, np.arange(n + 1))
        for p in np.flatnonzero(~done):
            if not done[p]:
                kept[p] = True
                done[p] = True
                done[lo[bounds[p]:bounds[p + 1]]] = True
    kept |= ~done
    return np.flatnonzero(kept)


def filter_detections(
    boxes: Tensor,
    scores: Tensor,
    labels: Tensor | None = None,
    *,
    score_threshold: float = 0.05,
    iou_threshold: float = 0.5,
    max_detections: int = 100,
    min_size: float = 0.0,
    class_agnostic: bool = False,
) -> dict[str, Tensor]:
    """A detector's post-processing: score threshold, (per-class) NMS, then the best `max_detections`.

    Boxes with a score below `score_threshold` are dropped (a score equal to it is kept), boxes narrower or
    lower than `min_size` too, then NMS runs per class (or over all boxes with `class_agnostic`).

    Args:
        boxes: Tensor[N, 4] in (x1, y1, x2, y2) pixels, or Tensor[N, C, 4] with one box per class (R-CNN heads).
        scores: Tensor[N] (one score per box, with `labels`), or Tensor[N, C] (a score per class; each box may
            survive under several classes, as torchvision's RoIHeads does).
        labels: Tensor[N] int, required with 1-D scores and ignored otherwise (defaults to all 0).
        score_threshold: smallest score kept.
        iou_threshold: NMS threshold.
        max_detections: how many detections to return at most, best first.
        min_size: smallest box side kept.
        class_agnostic: suppress across classes.

    Returns:
        {"boxes": Tensor[K, 4], "scores": Tensor[K], "labels": Tensor[K] int64, "indices": Tensor[K] int64 (row
        of the input box each detection came from)}, by decreasing score.
    """
    if scores.ndim == 2:
        n, num_classes = scores.shape
        rows = torch.arange(n, device=scores.device)[:, None].expand(n, num_classes).reshape(-1)
        cls = torch.arange(num_classes, device=scores.device)[None, :].expand(n, num_classes).reshape(-1)
        if boxes.ndim == 3:
            if boxes.shape[:2] != scores.shape:
                raise InputError(f"boxes {tuple(boxes.shape)} do not match scores {tuple(scores.shape)}")
            flat_boxes = boxes.reshape(-1, 4)
        else:
            flat_boxes = boxes[rows]
        flat_scores = scores.reshape(-1)
    else:
        _check(boxes, scores)
        rows = torch.arange(boxes.shape[0], device=boxes.device)
        cls = labels.to(torch.int64) if labels is not None else torch.zeros_like(rows)
        flat_boxes, flat_scores = boxes, scores
    sel = torch.where(flat_scores >= score_threshold)[0]
    if min_size > 0:
        sel = sel[remove_small_boxes(flat_boxes[sel], min_size)]
    b, s, c = flat_boxes[sel], flat_scores[sel], cls[sel]
    keep = nms(b, s, iou_threshold) if class_agnostic else batched_nms(b, s, c, iou_threshold)
    keep = keep[:max_detections]
    return {"boxes": b[keep], "scores": s[keep], "labels": c[keep], "indices": rows[sel][keep]}

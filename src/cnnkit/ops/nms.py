"""Non-maximum suppression: plain, per class (batched), and the score-threshold + top-k post-processing.

The course's rule: drop boxes below a score threshold, then repeatedly keep the best remaining box and remove
every box whose IoU with it is above the IoU threshold, class by class. `nms` and `batched_nms` have
torchvision's names, arguments and results (kept indices by decreasing score; equal scores keep the lower index
first, like a stable sort).

How it is fast without a compiled kernel: like OpenCV's NMSBoxes, a box is only ever compared with boxes that
were kept, never with every other box. Boxes are taken in score order in blocks of 64 survivors; a block is
resolved with one dense 64 x 64 IoU and a loop of shift-and-OR on Python-int bit sets, and its kept boxes then
remove the later boxes they overlap, all at once: with one dense IoU while the product of the counts is small,
otherwise through a grid of box centres (a box can only suppress boxes whose centre lies within
(1 - t) * min(w / t, widest) of its own, likewise in y), so each kept box looks at its neighbourhood only.
The kept set is that of the plain loop exactly (tests compare them, including ties and touching boxes).
"""

from __future__ import annotations

import functools

import numpy as np
import torch
from torch import Tensor

from cnnkit.errors import InputError
from cnnkit.ops.boxes import box_iou, remove_small_boxes

__all__ = ["batched_nms", "filter_detections", "nms"]

_BLOCK = 64  # boxes resolved together: a dense BLOCK x BLOCK IoU, then a loop of shifts and ORs
_DENSE_LIMIT = 1 << 16  # kept x later boxes up to which suppression is one dense IoU, beyond: the centre grid


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
    with np.errstate(invalid="ignore", divide="ignore"):
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
    if not t < 1:  # IoU never exceeds 1 (or t is NaN): nothing is suppressed
        return order.astype(np.int64)
    b = b[order]
    x1, y1, x2, y2 = (np.ascontiguousarray(b[:, k]) for k in range(4))
    area = (x2 - x1) * (y2 - y1)
    cls = None if c is None else c[order]
    grid = None
    upper = _upper(_BLOCK)
    alive = np.ones(n, dtype=bool)
    kept = []
    pos = 0
    while pos < n:
        cand = np.flatnonzero(alive[pos:])
        if not len(cand):
            break
        cand = cand[:_BLOCK] + pos
        end = int(cand[-1]) + 1
        local = _resolve_block(cand, x1, y1, x2, y2, area, cls, t, upper)
        kept.append(local)
        pos = end
        if pos >= n:
            break
        # remove the later boxes these kept boxes overlap
        if len(local) * (n - end) <= _DENSE_LIMIT:
            j = np.flatnonzero(alive[end:]) + end
            if not len(j):
                break
            hit = _overlaps(local[:, None], j[None, :], x1, y1, x2, y2, area, cls, t).any(axis=0)
            alive[j[hit]] = False
        else:
            if grid is None:
                grid = _CentreGrid(x1, y1, x2, y2, cls, t)
            i, j = grid.near(local)
            ok = (j >= end) & alive[j]
            i, j = i[ok], j[ok]
            alive[j[_overlaps(i, j, x1, y1, x2, y2, area, cls, t)]] = False
    keep = np.concatenate(kept) if kept else np.zeros(0, dtype=np.int64)
    return order[keep].astype(np.int64)


@functools.lru_cache(maxsize=4)
def _upper(size: int) -> np.ndarray:
    """Strict upper triangle mask (size, size): pairs (r, q) with r before q."""
    return np.triu(np.ones((size, size), dtype=bool), 1)


def _overlaps(i, j, x1, y1, x2, y2, area, cls, t) -> np.ndarray:
    """IoU(i, j) > t (same category when given), broadcasting index arrays; box_iou's arithmetic."""
    iw = np.minimum(x2[i], x2[j]) - np.maximum(x1[i], x1[j])
    ih = np.minimum(y2[i], y2[j]) - np.maximum(y1[i], y1[j])
    inter = np.maximum(iw, 0) * np.maximum(ih, 0)
    hit = inter / (area[i] + area[j] - inter) > t  # NaN for two empty boxes: not above t
    if cls is not None:
        hit &= cls[i] == cls[j]
    return hit


def _resolve_block(cand, x1, y1, x2, y2, area, cls, t, upper) -> np.ndarray:
    """Greedy NMS among a block of consecutive surviving boxes (positions in score order)."""
    m = len(cand)
    if m == 1:
        return cand
    over = _overlaps(cand[:, None], cand[None, :], x1, y1, x2, y2, area, cls, t) & upper[:m, :m]
    if not over.any():
        return cand
    # one Python int per row as a bit set: the sequential part costs a shift and an OR per box
    packed = np.packbits(over, axis=1, bitorder="little")
    width = packed.shape[1]
    buf = packed.tobytes()
    removed = 0
    sel = []
    for r in range(m):
        if not (removed >> r) & 1:
            sel.append(r)
            removed |= int.from_bytes(buf[r * width:(r + 1) * width], "little")
    return cand[sel]


class _CentreGrid:
    """Boxes bucketed by centre so that a kept box finds the boxes it may suppress with a few range lookups.

    IoU > t needs an x-overlap above t times the wider box, which is at most the narrower one: so the widths are
    within a factor 1/t and |cx_i - cx_j| < (1 - t) max(w_i, w_j) <= (1 - t) min(w_i / t, largest width); the
    same in y. Cells are half the median such radius; each grid row of a query window is one contiguous run of
    the boxes sorted by (category, row, column).
    """

    def __init__(self, x1, y1, x2, y2, cls, t) -> None:
        cx = (x1.astype(np.float64) + x2) * 0.5
        cy = (y1.astype(np.float64) + y2) * 0.5
        w = (x2 - x1).astype(np.float64)
        h = (y2 - y1).astype(np.float64)
        inv = 1.0 / t if t > 0 else np.inf
        slack = 1 + 1e-6  # the radius is a bound; a little more guards rounding
        self.rx = (1 - t) * np.minimum(w * inv, max(float(w.max()), 0.0)) * slack + 1e-9 * (1 + np.abs(cx))
        self.ry = (1 - t) * np.minimum(h * inv, max(float(h.max()), 0.0)) * slack + 1e-9 * (1 + np.abs(cy))
        self.gx = max(float(np.median(self.rx)) * 0.5, 1e-9)
        self.gy = max(float(np.median(self.ry)) * 0.5, 1e-9)
        self.ox, self.oy = float(cx.min()), float(cy.min())
        col = np.floor((cx - self.ox) / self.gx).astype(np.int64)
        row = np.floor((cy - self.oy) / self.gy).astype(np.int64)
        self.ncols, self.nrows = int(col.max()) + 1, int(row.max()) + 1
        self.band = None if cls is None else (cls - cls.min()) * self.nrows
        key = (row if cls is None else self.band + row) * self.ncols + col
        self.perm = np.argsort(key, kind="stable")
        self.skey = key[self.perm]
        self.cx, self.cy = cx, cy

    def near(self, local: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pairs (i, j): j's centre lies in the window of kept box i (a superset of the boxes i can suppress)."""
        kx, ky, rx, ry = self.cx[local], self.cy[local], self.rx[local], self.ry[local]
        c0 = np.floor((kx - rx - self.ox) / self.gx).astype(np.int64).clip(0, self.ncols - 1)
        c1 = np.floor((kx + rx - self.ox) / self.gx).astype(np.int64).clip(0, self.ncols - 1)
        r0 = np.floor((ky - ry - self.oy) / self.gy).astype(np.int64).clip(0, self.nrows - 1)
        r1 = np.floor((ky + ry - self.oy) / self.gy).astype(np.int64).clip(0, self.nrows - 1)
        nr = r1 - r0 + 1
        q = np.repeat(np.arange(len(local)), nr)  # one query per (kept box, grid row)
        qrow = r0[q] + (np.arange(len(q)) - np.repeat(np.cumsum(nr) - nr, nr))
        if self.band is not None:
            qrow = qrow + self.band[local][q]
        lo = np.searchsorted(self.skey, qrow * self.ncols + c0[q], side="left")
        hi = np.searchsorted(self.skey, qrow * self.ncols + c1[q], side="right")
        cnt = hi - lo
        rep = np.repeat(np.arange(len(q)), cnt)
        j = self.perm[np.arange(int(cnt.sum())) - np.repeat(np.cumsum(cnt) - cnt - lo, cnt)]
        return local[q[rep]], j


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
        if boxes.ndim == 3 and boxes.shape[:2] != scores.shape:
            raise InputError(f"boxes {tuple(boxes.shape)} do not match scores {tuple(scores.shape)}")
        rows, c = torch.where(scores >= score_threshold)  # threshold first: a YOLO head has N * C candidates
        b = boxes[rows, c] if boxes.ndim == 3 else boxes[rows]
        s = scores[rows, c]
    else:
        _check(boxes, scores)
        rows = torch.where(scores >= score_threshold)[0]
        c = labels[rows].to(torch.int64) if labels is not None else torch.zeros_like(rows)
        b, s = boxes[rows], scores[rows]
    if min_size > 0:
        big = remove_small_boxes(b, min_size)
        rows, c, b, s = rows[big], c[big], b[big], s[big]
    keep = nms(b, s, iou_threshold) if class_agnostic else batched_nms(b, s, c, iou_threshold)
    keep = keep[:max_detections]
    return {"boxes": b[keep], "scores": s[keep], "labels": c[keep], "indices": rows[keep]}

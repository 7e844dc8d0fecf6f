"""Anchor boxes chosen by k-means on the training boxes' shapes, with `1 - IoU` as the distance (YOLOv2).

Euclidean k-means on (w, h) lets big boxes dominate: a 10-pixel error matters little on a 200-pixel box and a
lot on a 20-pixel one. IoU of two boxes put at the same centre measures shape agreement at every scale.
"""

from __future__ import annotations

import numpy as np

from cnnkit.errors import InputError


def anchor_iou(wh: np.ndarray, anchors: np.ndarray) -> np.ndarray:
    """IoU of boxes and anchors placed at the same centre (shape only).

    Args:
        wh: array (N, 2) of box (width, height).
        anchors: array (K, 2) of anchor (width, height).

    Returns:
        array (N, K): min(w) min(h) / (w h + w_a h_a - min(w) min(h)).
    """
    wh = np.asarray(wh, dtype=np.float64)[:, None, :]  # (N, 1, 2)
    anchors = np.asarray(anchors, dtype=np.float64)[None, :, :]  # (1, K, 2)
    inter = np.minimum(wh, anchors).prod(-1)
    return inter / (wh.prod(-1) + anchors.prod(-1) - inter)


def kmeans_anchors(wh: np.ndarray, k: int, *, iters: int = 300, seed: int = 0) -> tuple[np.ndarray, float]:
    """k anchor shapes by k-means with distance 1 - IoU (k-means++ start, then Lloyd iterations to a fixed point).

    The centre of a cluster is the median (w, h) of its boxes, as in the widely used implementations (the mean
    is pulled by a few outliers).

    Args:
        wh: array (N, 2) of training box (width, height), N >= k, all positive.
        k: number of anchors.
        iters: maximum iterations.
        seed: seed of the initial choice.

    Returns:
        (anchors array (k, 2) sorted by area, average IoU of each box with its best anchor).

    Raises:
        InputError: fewer boxes than anchors, or boxes of non-positive size.
    """
    wh = np.asarray(wh, dtype=np.float64).reshape(-1, 2)
    if k < 1:
        raise InputError(f"need at least one anchor, got k={k}")
    if len(wh) < k:
        raise InputError(f"k-means needs at least k={k} training boxes, got {len(wh)}; use fewer anchors")
    if (wh <= 0).any():
        raise InputError("k-means anchors: every box needs a positive width and height")
    rng = np.random.default_rng(seed)
    centres = wh[[rng.integers(len(wh))]]
    while len(centres) < k:  # k-means++: next centre drawn with probability proportional to the squared distance
        d = (1.0 - anchor_iou(wh, centres).max(1)) ** 2
        p = d / d.sum() if d.sum() > 0 else None
        centres = np.concatenate([centres, wh[[rng.choice(len(wh), p=p)]]])
    assign = None
    for _ in range(iters):
        new = (1.0 - anchor_iou(wh, centres)).argmin(1)
        if assign is not None and (new == assign).all():
            break
        assign = new
        for j in range(k):
            members = wh[assign == j]
            if len(members):
                centres[j] = np.median(members, axis=0)
    centres = centres[np.argsort(centres.prod(1))]
    return centres.astype(np.float32), float(anchor_iou(wh, centres).max(1).mean())

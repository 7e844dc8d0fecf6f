"""Selective search (Uijlings et al. 2013): region proposals by hierarchical grouping of a graph-based
over-segmentation (Felzenszwalb & Huttenlocher, scikit-image's `felzenszwalb`).

Starting from the segments, the two neighbouring regions of highest similarity are merged until one region is
left; every region ever formed gives a box. Similarity is a sum of
  colour  - intersection of 25-bin colour histograms per channel (L1-normalised),
  texture - intersection of histograms of Gaussian-derivative responses in 8 orientations, 10 bins per channel,
  size    - 1 - (size_i + size_j) / image size (small regions merge first),
  fill    - 1 - (box_ij - size_i - size_j) / image size (regions that fill each other's gaps merge first).
Diversification as the paper's "fast" mode: two colour spaces (HSV, Lab) x two scales k (50, 100) x two
similarities (colour+texture+size+fill, texture+size+fill). Boxes are ranked as the paper does: the position of a
region in its hierarchy (1 = the whole image) times a random number in [0, 1), lowest first, duplicates removed.

    boxes = selective_search(image_uint8_hwc, max_proposals=500)   # Tensor[P, 4] xyxy, best first
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

import numpy as np
import torch
from scipy import ndimage

from cnnkit.errors import InputError

COLOUR_BINS = 25
TEXTURE_BINS = 10
ORIENTATIONS = 8


@dataclass(frozen=True)
class Strategy:
    """One diversification: colour space ("rgb", "hsv", "lab"), Felzenszwalb scale k, similarity terms."""

    colour_space: str = "hsv"
    k: int = 100
    terms: str = "ctsf"   # any of c(olour) t(exture) s(ize) f(ill)


FAST = tuple(Strategy(cs, k, terms) for cs in ("hsv", "lab") for k in (50, 100) for terms in ("ctsf", "tsf"))
SINGLE = (Strategy("hsv", 100, "ctsf"),)


def _convert(image: np.ndarray, space: str) -> np.ndarray:
    """(H, W, 3) float in [0, 1] in the colour space, each channel scaled to [0, 1]."""
    from skimage import color

    if space == "rgb":
        return image
    if space == "hsv":
        return color.rgb2hsv(image)
    if space == "lab":
        lab = color.rgb2lab(image)
        return np.stack([lab[..., 0] / 100.0, (lab[..., 1] + 128) / 255.0, (lab[..., 2] + 128) / 255.0], -1)
    raise InputError(f"unknown colour space {space!r}; use rgb, hsv or lab")


def _histograms(values: np.ndarray, labels: np.ndarray, n: int, bins: int) -> np.ndarray:
    """(H, W, D) values in [0, 1] -> (n, D * bins) per-region histograms (unnormalised counts)."""
    d = values.shape[-1]
    idx = np.clip((values * bins).astype(np.int64), 0, bins - 1)                  # (H, W, D)
    flat = (labels[..., None] * d + np.arange(d)) * bins + idx                  # (H, W, D)
    return np.bincount(flat.ravel(), minlength=n * d * bins).reshape(n, d * bins).astype(np.float64)


def _texture(image: np.ndarray) -> np.ndarray:
    """Gaussian-derivative (sigma 1) responses in ORIENTATIONS directions per channel, each scaled to [0, 1]:
    (H, W, 3 * ORIENTATIONS)."""
    out = []
    for c in range(image.shape[-1]):
        gy = ndimage.gaussian_filter(image[..., c], 1.0, order=(1, 0))
        gx = ndimage.gaussian_filter(image[..., c], 1.0, order=(0, 1))
        for a in np.arange(ORIENTATIONS) * (2 * np.pi / ORIENTATIONS):
            r = np.maximum(np.cos(a) * gx + np.sin(a) * gy, 0.0)
            out.append(r / r.max() if r.max() > 0 else r)
    return np.stack(out, -1)


def _normalise(h: np.ndarray) -> np.ndarray:
    return h / np.maximum(h.sum(1, keepdims=True), 1e-12)


def hierarchical_grouping(image: np.ndarray, strategy: Strategy) -> tuple[np.ndarray, np.ndarray]:
    """Every region of one strategy's hierarchy: (boxes (R, 4) xyxy float, positions (R,) with 1 = the last merge).

    Args:
        image: (H, W, 3) float RGB in [0, 1].
    """
    from skimage.segmentation import felzenszwalb

    h, w = image.shape[:2]
    space = _convert(image, strategy.colour_space)
    labels = felzenszwalb(space, scale=strategy.k, sigma=0.8, min_size=strategy.k)
    n = int(labels.max()) + 1
    sizes = np.bincount(labels.ravel(), minlength=n).astype(np.float64)
    boxes = np.zeros((n, 4))
    for i, sl in enumerate(ndimage.find_objects(labels + 1)):
        boxes[i] = (sl[1].start, sl[0].start, sl[1].stop, sl[0].stop)
    colour = _normalise(_histograms(space, labels, n, COLOUR_BINS))
    texture = _normalise(_histograms(_texture(space), labels, n, TEXTURE_BINS))
    area = float(h * w)

    pairs = set()
    for a, b in ((labels[:, :-1], labels[:, 1:]), (labels[:-1, :], labels[1:, :])):
        m = a != b
        lo, hi = np.minimum(a[m], b[m]), np.maximum(a[m], b[m])
        pairs.update(zip(lo.tolist(), hi.tolist(), strict=True))
    neighbours: dict[int, set[int]] = {i: set() for i in range(n)}
    for i, j in pairs:
        neighbours[i].add(j)
        neighbours[j].add(i)

    # regions grow as merges add them; arrays are preallocated for the n - 1 merges
    total = 2 * n - 1
    sizes = np.concatenate([sizes, np.zeros(total - n)])
    boxes = np.concatenate([boxes, np.zeros((total - n, 4))])
    colour = np.concatenate([colour, np.zeros((total - n, colour.shape[1]))])
    texture = np.concatenate([texture, np.zeros((total - n, texture.shape[1]))])
    terms = strategy.terms

    def similarity(i: int, j: int) -> float:
        s = 0.0
        if "c" in terms:
            s += np.minimum(colour[i], colour[j]).sum()
        if "t" in terms:
            s += np.minimum(texture[i], texture[j]).sum()
        if "s" in terms:
            s += 1.0 - (sizes[i] + sizes[j]) / area
        if "f" in terms:
            bw = max(boxes[i, 2], boxes[j, 2]) - min(boxes[i, 0], boxes[j, 0])
            bh = max(boxes[i, 3], boxes[j, 3]) - min(boxes[i, 1], boxes[j, 1])
            s += 1.0 - (bw * bh - sizes[i] - sizes[j]) / area
        return s

    heap = [(-similarity(i, j), i, j) for i, j in pairs]
    heapq.heapify(heap)
    alive = set(range(n))
    new = n
    while heap:
        _, i, j = heapq.heappop(heap)
        if i not in alive or j not in alive:
            continue  # a pair of a region merged since: stale
        t = new
        new += 1
        sizes[t] = sizes[i] + sizes[j]
        boxes[t] = (min(boxes[i, 0], boxes[j, 0]), min(boxes[i, 1], boxes[j, 1]),
                    max(boxes[i, 2], boxes[j, 2]), max(boxes[i, 3], boxes[j, 3]))
        colour[t] = (sizes[i] * colour[i] + sizes[j] * colour[j]) / sizes[t]
        texture[t] = (sizes[i] * texture[i] + sizes[j] * texture[j]) / sizes[t]
        alive -= {i, j}
        nb = (neighbours.pop(i) | neighbours.pop(j)) - {i, j}
        neighbours[t] = nb
        for k in nb:
            neighbours[k] -= {i, j}
            neighbours[k].add(t)
            heapq.heappush(heap, (-similarity(k, t), k, t))
        alive.add(t)
    made = new
    # position in the hierarchy: the last region formed is 1, the first segments are made
    positions = made - np.arange(made)
    return boxes[:made], positions.astype(np.float64)


def selective_search(image, *, strategies=FAST, max_proposals: int | None = 500, seed: int = 0) -> torch.Tensor:
    """Ranked region proposals of one image.

    Args:
        image: (H, W, 3) uint8 or float in [0, 1] RGB (or (3, H, W) float Tensor); grey (H, W) is repeated.
        strategies: the diversification strategies (FAST: 8; SINGLE: one, faster, lower recall).
        max_proposals: keep the best this many (None: all).
        seed: seed of the random ranking.

    Returns:
        Tensor[P, 4] float32 xyxy pixel boxes (integer edges; x2, y2 exclusive), best first, no duplicates.
    """
    img = image.detach().cpu().permute(1, 2, 0).numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, -1)
    if img.ndim != 3 or img.shape[-1] not in (1, 3) or min(img.shape[:2]) < 2:
        raise InputError(f"selective search needs an (H, W, 3) image of at least 2 x 2 pixels, got {img.shape}")
    if img.shape[-1] == 1:
        img = np.repeat(img, 3, -1)
    img = img.astype(np.float64) / 255.0 if img.dtype == np.uint8 else np.clip(img.astype(np.float64), 0, 1)
    rng = np.random.default_rng(seed)
    all_boxes, ranks = [], []
    for s in strategies:
        b, pos = hierarchical_grouping(img, s)
        all_boxes.append(b)
        ranks.append(pos * rng.random(len(pos)))
    boxes = np.concatenate(all_boxes)
    order = np.argsort(np.concatenate(ranks), kind="stable")
    _, first = np.unique(boxes[order], axis=0, return_index=True)
    keep = order[np.sort(first)]
    if max_proposals is not None:
        keep = keep[:max_proposals]
    return torch.as_tensor(boxes[keep], dtype=torch.float32)

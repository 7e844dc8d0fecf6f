"""What a unit responds to (Zeiler and Fergus 2013): the dataset patches that activate it most.

A unit of a convolutional layer (one channel at one position) sees a window of the input, its receptive field,
which grows with depth: a few pixels in the first layer, most of the image in the last. For each chosen channel,
`top_patches` runs the images through the network, finds each image's strongest position of that channel, and
keeps the `k` images where it is strongest, cutting out exactly the window that unit sees (its size and place from
`cnnkit.shapes.receptive_field`, via `cnnkit.style.features.layer_geometry`). Early layers' patches show
colours and edges; deep layers' show textures, parts and objects.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from cnnkit.errors import InputError
from cnnkit.style.features import IMAGENET_NORM, FeatureExtractor, InputNorm, layer_geometry

__all__ = ["Patch", "sample_crops", "strongest_units", "top_patches", "units_figure", "window"]


@dataclass
class Patch:
    """One unit's response to one image.

    Attributes:
        image: index of the image in the dataset.
        unit: channel of the layer.
        position: (row, column) of the strongest unit in the layer's map.
        activation: its value.
        box: (top, bottom, left, right) of its receptive field in image pixels, bottom/right exclusive; it may
            reach outside the image (the network sees zero padding there).
        pixels: the window (r, r, 3) uint8, gray where it lies outside the image.
    """

    image: int
    unit: int
    position: tuple[int, int]
    activation: float
    box: tuple[int, int, int, int]
    pixels: np.ndarray


def window(position: tuple[int, int], geometry: tuple[int, int, float]) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) input window, bottom/right exclusive, of the unit at `position`.

    Args:
        position: (row, column) in the layer's map.
        geometry: (r, j, offset) from `layer_geometry`: receptive field, jump and centre of unit 0.
    """
    r, j, offset = geometry
    top = int(round(offset + position[0] * j - (r - 1) / 2))
    left = int(round(offset + position[1] * j - (r - 1) / 2))
    return top, top + r, left, left + r


def _cut(image: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """image[box] with gray where the box leaves the image."""
    top, bottom, left, right = box
    h, w = image.shape[:2]
    out = np.full((bottom - top, right - left, 3), 128, np.uint8)
    y0, y1, x0, x1 = max(top, 0), min(bottom, h), max(left, 0), min(right, w)
    if y1 > y0 and x1 > x0:
        out[y0 - top:y1 - top, x0 - left:x1 - left] = image[y0:y1, x0:x1]
    return out


def _interior(map_size, geometry, image_size) -> torch.Tensor:
    """(h_l, w_l) bool: units whose window is inside the image (or, if none is, whose centre is in its middle)."""
    r, j, offset = geometry
    axes = []
    for n_l, n in zip(map_size, image_size, strict=True):
        centre = offset + torch.arange(n_l) * j
        inside = (centre - (r - 1) / 2 >= 0) & (centre + (r - 1) / 2 <= n - 1)
        if not inside.any():
            inside = (centre >= n / 4) & (centre <= 3 * n / 4)
        if not inside.any():
            inside = torch.ones(n_l, dtype=torch.bool)
        axes.append(inside)
    return axes[0][:, None] & axes[1][None, :]


def _batch(images: Sequence[np.ndarray]) -> torch.Tensor:
    arr = np.stack([np.asarray(im) for im in images])
    if arr.ndim == 3:
        arr = np.repeat(arr[..., None], 3, axis=3)
    return torch.from_numpy(arr).permute(0, 3, 1, 2).float().div(255.0)  # (B, 3, H, W)


def top_patches(model, layer: str, images: Sequence[np.ndarray], units: Sequence[int] | None = None, k: int = 9,
                norm: InputNorm = IMAGENET_NORM, batch_size: int = 16, interior: bool = True) -> dict[int, list[Patch]]:
    """The `k` images that excite each unit most, each cut to that unit's receptive field.

    Args:
        model: any network (`FeatureExtractor` names its layers).
        layer: the layer name.
        images: (H, W, 3) uint8 images of one size.
        units: channels to show (default: the first 8).
        k: patches per unit (at most one per image, as Zeiler and Fergus show them).
        norm: the network's preprocessing.
        batch_size: images per forward pass.
        interior: consider only units whose window lies inside the image (zero padding at the borders makes
            border units fire on the image edge itself); when no window fits, units whose centre lies in the
            middle half of the image.

    Returns:
        unit -> its patches, strongest first.
    """
    if not len(images):
        raise InputError("no images to search for top patches")
    shapes = {np.asarray(im).shape[:2] for im in images}
    if len(shapes) != 1:
        raise InputError(f"top_patches needs images of one size, got {sorted(shapes)}; crop or resize them first")
    fe = FeatureExtractor(model, [layer], norm)
    h, w = shapes.pop()
    geometry = layer_geometry(model, layer, input_size=(h, w))
    best: dict[int, list[tuple[float, int, tuple[int, int]]]] = {}
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            acts = fe(_batch(images[start:start + batch_size]))[layer].float()  # (B, C, h_l, w_l)
            if acts.dim() != 4:
                raise InputError(f"layer {layer!r} has no spatial map (shape {tuple(acts.shape)}); pick a conv layer")
            chosen = list(units) if units is not None else list(range(min(8, acts.shape[1])))
            bad = [u for u in chosen if not 0 <= u < acts.shape[1]]
            if bad:
                raise InputError(f"unit(s) {bad} out of range: layer {layer!r} has {acts.shape[1]} channels")
            flat = acts[:, chosen].flatten(2)  # (B, U, h_l * w_l)
            if interior:
                allowed = _interior(acts.shape[-2:], geometry, (h, w)).flatten()
                flat = flat.masked_fill(~allowed, float("-inf"))
            values, where = flat.max(dim=2)
            for b in range(acts.shape[0]):
                for u_i, u in enumerate(chosen):
                    pos = divmod(int(where[b, u_i]), acts.shape[3])
                    best.setdefault(u, []).append((float(values[b, u_i]), start + b, pos))
    out: dict[int, list[Patch]] = {}
    for u, found in best.items():
        found.sort(key=lambda t: -t[0])
        out[u] = []
        for value, index, pos in found[:k]:
            box = window(pos, geometry)
            out[u].append(Patch(index, u, pos, value, box, _cut(np.asarray(images[index]), box)))
    return out


def strongest_units(model, layer: str, images: Sequence[np.ndarray], n: int = 6,
                    norm: InputNorm = IMAGENET_NORM) -> list[int]:
    """The `n` channels with the largest mean of their per-image maxima (units that respond to something here)."""
    fe = FeatureExtractor(model, [layer], norm)
    with torch.no_grad():
        acts = fe(_batch(images[:64]))[layer].float()
    score = acts.flatten(2).max(dim=2).values.mean(0)  # (C,)
    return score.argsort(descending=True)[:n].tolist()


def sample_crops(images: Sequence[np.ndarray], n: int, size: int, seed: int = 0) -> list[np.ndarray]:
    """`n` random `size` x `size` crops of the given images (uint8, RGB), taken evenly from each."""
    rng = np.random.default_rng(seed)
    out = []
    pool = [np.asarray(im) if np.asarray(im).ndim == 3 else np.repeat(np.asarray(im)[..., None], 3, 2)
            for im in images]
    pool = [im[..., :3] for im in pool if min(im.shape[:2]) >= size]
    if not pool:
        raise InputError(f"no image is at least {size} px on its shorter side")
    for i in range(n):
        im = pool[i % len(pool)]
        y = int(rng.integers(0, im.shape[0] - size + 1))
        x = int(rng.integers(0, im.shape[1] - size + 1))
        out.append(np.ascontiguousarray(im[y:y + size, x:x + size]))
    return out


def units_figure(patches: dict[int, list[Patch]], title: str = ""):
    """A grid: one row per unit, its top patches left to right (strongest first)."""
    import matplotlib.pyplot as plt

    units = list(patches)
    k = max(len(p) for p in patches.values())
    fig, axes = plt.subplots(len(units), k, figsize=(1.1 * k + 0.6, 1.15 * len(units) + 0.4), squeeze=False)
    for row, u in enumerate(units):
        for col in range(k):
            ax = axes[row, col]
            ax.set_xticks([])
            ax.set_yticks([])
            for side in ax.spines.values():
                side.set_visible(False)
            if col < len(patches[u]):
                ax.imshow(patches[u][col].pixels, interpolation="nearest")
            if col == 0:
                ax.set_ylabel(f"unit {u}", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig

"""First-layer filters as images: what the network looks for in raw pixels (edges, colour blobs)."""

from __future__ import annotations

import numpy as np
import torch.nn as nn

from cnnkit.errors import InputError

__all__ = ["first_conv", "filter_images", "filters_figure"]


def first_conv(model: nn.Module) -> tuple[str, nn.Conv2d]:
    """(module path, module) of the first convolution the model defines."""
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d):
            return name, m
    raise InputError(f"{type(model).__name__} has no convolution to show")


def filter_images(model: nn.Module, bgr: bool = False) -> np.ndarray:
    """The first layer's filters as images, (N, k, k, 3) float in [0, 1] (or (N, k, k) for one input channel).

    Each filter is scaled on its own, symmetrically around 0 (mid-gray = 0), so its pattern shows whatever its
    norm. `bgr` flips the channel order of networks that take BGR input (Caffe's), so colours look right.
    """
    _, conv = first_conv(model)
    w = conv.weight.detach().float().cpu().numpy()  # (N, C, k, k)
    lim = np.abs(w).reshape(w.shape[0], -1).max(axis=1).reshape(-1, 1, 1, 1) + 1e-12
    w = 0.5 + 0.5 * w / lim
    if w.shape[1] == 3:
        w = w[:, ::-1] if bgr else w
        return np.ascontiguousarray(w.transpose(0, 2, 3, 1))
    if w.shape[1] == 1:
        return w[:, 0]
    return w.mean(axis=1)  # other channel counts: their mean


def filters_figure(model: nn.Module, bgr: bool = False, limit: int = 64, title: str | None = None):
    """A grid of up to `limit` first-layer filters."""
    import matplotlib.pyplot as plt

    name, conv = first_conv(model)
    imgs = filter_images(model, bgr)[:limit]
    cols = min(16, len(imgs))
    rows = -(-len(imgs) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(0.75 * cols + 0.4, 0.75 * rows + 0.6), squeeze=False)
    for i, ax in enumerate(axes.ravel()):
        ax.axis("off")
        if i < len(imgs):
            ax.imshow(imgs[i], cmap="RdBu_r" if imgs[i].ndim == 2 else None, vmin=0, vmax=1, interpolation="nearest")
    k = conv.kernel_size
    fig.suptitle(title or f"{name}: {conv.out_channels} filters of {k[0]}x{k[1]}x{conv.in_channels} "
                 "(each scaled alone; gray = 0)", fontsize=10)
    fig.tight_layout()
    return fig

"""Feature maps of one layer for one image: where each channel fires."""

from __future__ import annotations

import numpy as np
import torch

from cnnkit.style.features import IMAGENET_NORM, FeatureExtractor, InputNorm

__all__ = ["feature_maps", "maps_figure"]


def feature_maps(model, layer: str, image: np.ndarray, norm: InputNorm = IMAGENET_NORM) -> np.ndarray:
    """Activations of `layer` for one (H, W, 3) uint8 image: (C, h, w) float32."""
    x = torch.from_numpy(np.array(image, dtype=np.float32)).permute(2, 0, 1)[None] / 255.0
    with torch.no_grad():
        a = FeatureExtractor(model, [layer], norm)(x)[layer]
    return a[0].float().numpy()


def maps_figure(image: np.ndarray, maps: np.ndarray, layer: str, n: int = 16, order: str = "strongest"):
    """The image and `n` channel maps, each on its own colour scale (channels ranked by mean activation by default).

    Args:
        order: "strongest" (largest mean first) or "index" (channels 0, 1, 2 ...).
    """
    import matplotlib.pyplot as plt

    idx = np.argsort(-maps.reshape(len(maps), -1).mean(1))[:n] if order == "strongest" else np.arange(min(n, len(maps)))
    cols = min(len(idx) + 1, 9)
    rows = -(-(len(idx) + 1) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(1.4 * cols, 1.5 * rows + 0.4), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    axes[0, 0].imshow(image)
    axes[0, 0].set_title("input", fontsize=8)
    for i, c in enumerate(idx, start=1):
        ax = axes.ravel()[i]
        ax.imshow(maps[c], cmap="magma", interpolation="nearest")
        ax.set_title(f"ch {c}", fontsize=8)
    fig.suptitle(f"{layer}: {len(maps)} maps of {maps.shape[1]}x{maps.shape[2]}; {len(idx)} shown "
                 f"({'strongest mean first' if order == 'strongest' else 'by index'}; bright = strong)", fontsize=9)
    fig.tight_layout()
    return fig

"""AlexNet's "fancy PCA" colour statistics: the principal components of a data set's RGB values."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch

from cnnkit.errors import InputError


@dataclass(frozen=True)
class PCAColourStats:
    """Eigen-decomposition of the 3x3 covariance of RGB pixel values on the [0, 1] scale.

    Attributes:
        eigvals: (3,) eigenvalues (variances along each component), largest first.
        eigvecs: (3, 3) unit eigenvectors as columns, eigvecs[:, k] going with eigvals[k].
        mean: (3,) mean RGB value (for pictures; the augmentation does not use it).
    """

    eigvals: np.ndarray
    eigvecs: np.ndarray
    mean: np.ndarray

    def delta(self, alpha: np.ndarray) -> np.ndarray:
        """The RGB offset sum_k alpha_k * lambda_k * p_k added to every pixel, for alpha (3,)."""
        return self.eigvecs @ (np.asarray(alpha, dtype=np.float64) * self.eigvals)


# ImageNet's components on the [0, 1] scale, as fb.resnet.torch and many AlexNet re-implementations use them;
# the default when no data set has been fitted.
IMAGENET_PCA = PCAColourStats(
    eigvals=np.array([0.2175, 0.0188, 0.0045]),
    eigvecs=np.array([[-0.5675, 0.7192, 0.4009], [-0.5808, -0.0045, -0.8140], [-0.5836, -0.6948, 0.4203]]),
    mean=np.array([0.485, 0.456, 0.406]),
)


def _as_pixels(item) -> np.ndarray:
    """RGB pixels (P, 3) on [0, 1] from a uint8 (H, W, 3) array or a float tensor/array (3, H, W)."""
    if isinstance(item, torch.Tensor):
        a = item.detach().cpu().numpy()
        if a.ndim == 3 and a.shape[0] == 3:
            a = a.transpose(1, 2, 0)
    else:
        a = np.asarray(item)
    if a.ndim != 3 or a.shape[-1] != 3:
        raise InputError(f"fit_pca_colour needs RGB images (H, W, 3) or tensors (3, H, W), got shape {a.shape}")
    a = a.reshape(-1, 3)
    return a.astype(np.float64) / 255.0 if a.dtype == np.uint8 else a.astype(np.float64)


def fit_pca_colour(images, *, max_images: int = 2000, max_pixels: int = 1_000_000, seed: int = 0) -> PCAColourStats:
    """Eigen-decompose the covariance of the RGB values of a set of images.

    Args:
        images: a uint8 array (N, H, W, 3), a float tensor (N, 3, H, W) in [0, 1], an iterable of such single
            images, or an ImageDataset with 3 channels (its uint8 `raw` images are used).
        max_images: at most this many images are read (evenly spaced), for speed on big sets.
        max_pixels: at most this many pixels enter the covariance (a random subset, from `seed`).
        seed: seed of the pixel subset.

    Returns:
        PCAColourStats with eigenvalues in decreasing order.
    """
    items: Iterable
    if hasattr(images, "raw") and hasattr(images, "__len__"):  # an ImageDataset
        n = len(images)
        pick = np.unique(np.linspace(0, n - 1, min(n, max_images)).astype(int)) if n else []
        items = (images.raw(int(i))[0] for i in pick)
    elif isinstance(images, (np.ndarray, torch.Tensor)) and images.ndim == 4:
        n = len(images)
        pick = np.unique(np.linspace(0, n - 1, min(n, max_images)).astype(int))
        items = (images[int(i)] for i in pick)
    else:
        items = images
    pixels = [_as_pixels(x) for x in items]
    if not pixels:
        raise InputError("fit_pca_colour got no images")
    px = np.concatenate(pixels)
    if len(px) > max_pixels:
        px = px[np.random.default_rng(seed).choice(len(px), max_pixels, replace=False)]
    if len(px) < 2:
        raise InputError("fit_pca_colour needs at least 2 pixels")
    cov = np.cov(px, rowvar=False)
    vals, vecs = np.linalg.eigh(cov)  # ascending, for a symmetric matrix
    order = np.argsort(vals)[::-1]
    vals = np.clip(vals[order], 0.0, None)
    vecs = vecs[:, order]
    # sign convention: each component's largest entry positive, so the result does not flip between runs
    signs = np.sign(vecs[np.abs(vecs).argmax(axis=0), np.arange(3)])
    vecs = vecs * np.where(signs == 0, 1.0, signs)
    return PCAColourStats(eigvals=vals, eigvecs=vecs, mean=px.mean(0))

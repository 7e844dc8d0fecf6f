"""Pixel conversions shared by every source: channel count and size, on uint8 arrays."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from cnnkit.errors import InputError

# ITU-R 601 luma, the weights PIL uses for mode "L", so in-memory and on-disk images convert alike
_LUMA = np.array([0.299, 0.587, 0.114])


def check_in_chans(in_chans: int) -> None:
    if in_chans not in (1, 3):
        raise InputError(f"in_chans must be 1 (grayscale) or 3 (RGB), got {in_chans}")


def to_channels(images: np.ndarray, in_chans: int) -> np.ndarray:
    """Convert uint8 images (..., H, W, C) with C in {1, 3, 4} to (..., H, W, in_chans).

    Grayscale becomes RGB by repeating the channel; RGB becomes grayscale by ITU-R 601 luma (as PIL does);
    an alpha channel is dropped.
    """
    a = np.asarray(images)
    if a.shape[-1] not in (1, 3, 4):
        raise InputError(f"expected 1, 3 or 4 channels on the last axis, got shape {a.shape}")
    if a.shape[-1] == 4:
        a = a[..., :3]
    have = a.shape[-1]
    if have == in_chans:
        return a
    if in_chans == 3:
        return np.repeat(a, 3, axis=-1)
    luma = np.tensordot(a.astype(np.float32), _LUMA.astype(np.float32), axes=([-1], [0]))
    return np.clip(np.rint(luma), 0, 255).astype(np.uint8)[..., None]


def resize_uint8(images: np.ndarray, size: int, chunk: int = 512) -> np.ndarray:
    """Resize uint8 images (N, H, W, C) to (N, size, size, C), bilinear (antialiased when shrinking)."""
    n, h, w, c = images.shape
    if (h, w) == (size, size):
        return images
    out = np.empty((n, size, size, c), np.uint8)
    for s in range(0, n, chunk):  # chunks bound the float copy for large pools (CIFAR: 60,000 images)
        x = torch.from_numpy(np.ascontiguousarray(images[s : s + chunk])).permute(0, 3, 1, 2).float()
        y = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
        out[s : s + chunk] = y.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    return out


def channel_stats(
    images: np.ndarray, indices: np.ndarray | None = None, chunk: int = 1024
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of uint8 images (N, H, W, C) (those at `indices`, or all), on the [0, 1] scale.

    A channel with no spread gets std 1 so that normalising never divides by zero.
    """
    c = images.shape[-1]
    idx = np.arange(len(images)) if indices is None else np.asarray(indices)
    total = np.zeros(c)
    total_sq = np.zeros(c)
    count = 0
    for s in range(0, len(idx), chunk):  # chunks bound the float64 copy
        x = images[idx[s : s + chunk]].reshape(-1, c).astype(np.float64) / 255.0
        total += x.sum(0)
        total_sq += (x * x).sum(0)
        count += x.shape[0]
    if count == 0:
        return (0.0,) * c, (1.0,) * c
    mean = total / count
    std = np.sqrt(np.maximum(total_sq / count - mean * mean, 0.0))
    std = np.where(std < 1e-6, 1.0, std)
    return tuple(float(v) for v in mean), tuple(float(v) for v in std)

"""Embeddings of images by a trained encoder, preprocessed as its model file says (size, mean, std)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


@torch.no_grad()
def embed_images(model: nn.Module, images: Sequence[np.ndarray], meta: dict[str, Any],
                 batch_size: int = 256) -> np.ndarray:
    """(N, D) float32 embeddings of RGB images (H, W, 3) uint8 of any size, resized to the model's input.

    Args:
        model: an encoder (eval mode is set here).
        images: uint8 RGB (or grey (H, W)) arrays.
        meta: the model file's metadata: "input_size" [C, H, W], "mean", "std".
    """
    model.eval()
    c, h, w = (meta.get("input_size") or [3, 32, 32])[-3:]
    mean = torch.tensor(meta.get("mean") or [0.5] * c).view(1, -1, 1, 1)
    std = torch.tensor(meta.get("std") or [0.25] * c).view(1, -1, 1, 1)
    out = []
    for s in range(0, len(images), batch_size):
        xs = []
        for im in images[s : s + batch_size]:
            a = np.asarray(im)
            a = a[..., None] if a.ndim == 2 else a
            x = torch.from_numpy(np.array(a[..., :3], np.float32)).permute(2, 0, 1)[None] / 255.0  # a copy
            if x.shape[1] != c:
                x = x.mean(1, keepdim=True) if c == 1 else x.expand(1, c, *x.shape[2:])
            if x.shape[-2:] != (h, w):
                x = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False, antialias=True)
            xs.append(x)
        out.append(model((torch.cat(xs) - mean) / std).float())
    return torch.cat(out).numpy() if out else np.zeros((0, 0), np.float32)

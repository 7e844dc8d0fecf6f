"""Prediction of images of any size: whole-image with padding, or overlapping tiles blended and stitched.

A convolutional network maps an image of any size, but (1) pooling needs sizes that divide by 2**depth, so the
image is padded (reflection) to the network's `SizeRule` and the output cropped back; and (2) a large image's
activations do not fit in memory, so it is cut into overlapping tiles whose class probabilities are blended with
weights that fall off towards each tile's edge (where a tile sees least context) and stitched.

The stitching keeps only one band of tile rows in memory: when a row of tiles is done, the image rows no later
tile touches are final, are turned into labels, and leave the accumulator. Memory is thus O(tile * width *
classes) floats plus the uint8 input and label image, whatever the height. Tile positions are multiples of the
network's `size_rule.multiple`, so away from tile borders every tile sees the same pooling grid as the whole
image and the result equals whole-image prediction there.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import torch
import torch.nn as nn

from cnnkit.errors import InputError
from cnnkit.models.unet import SizeRule, pad_to_rule

Preprocess = Callable[[np.ndarray], torch.Tensor]


def size_rule_of(model: nn.Module) -> SizeRule:
    """The model's `size_rule`, or 32 for a segmentation model that does not say."""
    return getattr(model, "size_rule", None) or SizeRule(32)


def _to_tensor(image: np.ndarray, preprocess: Preprocess | None) -> torch.Tensor:
    if preprocess is not None:
        return preprocess(image)
    x = torch.from_numpy(np.ascontiguousarray(image))
    x = x.float() / 255.0 if image.dtype == np.uint8 else x.float()
    return x.permute(2, 0, 1) if x.dim() == 3 else x[None]  # (C, H, W)


@torch.no_grad()
def predict_whole(model: nn.Module, image: np.ndarray, *, preprocess: Preprocess | None = None) -> torch.Tensor:
    """Class probabilities (num_classes, H, W) float32 of one (H, W, C) image, padded by reflection to the
    network's size rule and cropped back."""
    model.eval()
    x = _to_tensor(image, preprocess)[None]  # (1, C, H, W)
    rule = size_rule_of(model)
    xp, (h, w) = pad_to_rule(x, rule, mode="reflect")
    out = model(xp).float().softmax(1)[0]  # (K, H', W')
    return out[:, :h, :w]


def _starts(n: int, tile: int, stride: int) -> list[int]:
    """Tile starts covering [0, n): 0, stride, 2*stride ... and n - tile last (all multiples of the stride's
    multiple when n and tile are)."""
    if n <= tile:
        return [0]
    starts = list(range(0, n - tile, stride))
    return starts + [n - tile]


def blend_window(tile: int, overlap: int) -> np.ndarray:
    """(tile,) weights: a linear ramp over `overlap` pixels at each end, 1 in the middle, never 0."""
    ramp = np.minimum(np.arange(tile) + 0.5, np.arange(tile)[::-1] + 0.5) / max(overlap, 1)
    return np.clip(ramp, 1.0 / max(overlap, 1), 1.0).astype(np.float32)


def _iter_rows(model: nn.Module, image: np.ndarray, *, tile: int, overlap: int, batch_size: int,
               preprocess: Preprocess | None, device: torch.device) -> Iterator[tuple[int, torch.Tensor]]:
    """Yield (y0, probabilities (K, rows, W)) bands of final rows, top to bottom."""
    rule = size_rule_of(model)
    m, mult = rule.margin, rule.multiple
    h, w = image.shape[:2]
    hp, wp = rule.output_size_for(h), rule.output_size_for(w)  # padded output size
    tile_h, tile_w = min(tile, hp), min(tile, wp)
    if (tile_h - rule.offset) % mult or (tile_w - rule.offset) % mult:
        raise InputError(f"tile size {tile} does not suit this network (sizes {rule.offset} + {mult}k)")
    stride_h = max(mult, (tile_h - overlap) // mult * mult)
    stride_w = max(mult, (tile_w - overlap) // mult * mult)
    # Pad the uint8 image once (reflection, as predict_whole): bottom/right to the padded size, margin all round.
    pad = ((m, hp - h + m), (m, wp - w + m)) + (((0, 0),) if image.ndim == 3 else ())
    mode = "reflect" if max(hp - h + m, wp - w + m) < min(h, w) else "edge"
    padded = np.pad(image, pad, mode=mode)
    wy = torch.from_numpy(blend_window(tile_h, min(overlap, tile_h // 2)))
    wx = torch.from_numpy(blend_window(tile_w, min(overlap, tile_w // 2)))
    weight = wy[:, None] * wx[None, :]  # (tile_h, tile_w)
    ys, xs = _starts(hp, tile_h, stride_h), _starts(wp, tile_w, stride_w)
    acc = None  # (K, band rows, wp): weighted probabilities of rows band_y0 ...
    wsum = torch.zeros(0, wp)
    band_y0 = 0
    for row, y in enumerate(ys):
        # grow the band down to this tile row's bottom
        need = y + tile_h - band_y0
        if wsum.shape[0] < need:
            grow = need - wsum.shape[0]
            wsum = torch.cat([wsum, torch.zeros(grow, wp)])
            if acc is not None:
                acc = torch.cat([acc, acc.new_zeros(acc.shape[0], grow, wp)], dim=1)
        for i in range(0, len(xs), batch_size):
            chunk = xs[i : i + batch_size]
            batch = torch.stack([_to_tensor(padded[y : y + tile_h + 2 * m, x : x + tile_w + 2 * m], preprocess)
                                 for x in chunk]).to(device)
            probs = model(batch).float().softmax(1).cpu()  # (b, K, tile_h, tile_w)
            if acc is None:
                acc = torch.zeros(probs.shape[1], wsum.shape[0], wp)
            r = y - band_y0
            for x, p in zip(chunk, probs, strict=True):
                acc[:, r : r + tile_h, x : x + tile_w] += p * weight
                wsum[r : r + tile_h, x : x + tile_w] += weight
        final = (ys[row + 1] if row + 1 < len(ys) else hp) - band_y0  # rows no later tile touches
        yield band_y0, acc[:, :final] / wsum[:final]
        acc, wsum, band_y0 = acc[:, final:].clone(), wsum[final:].clone(), band_y0 + final


@torch.no_grad()
def predict_tiled(model: nn.Module, image: np.ndarray, *, tile: int = 512, overlap: int = 128, batch_size: int = 1,
                  preprocess: Preprocess | None = None, return_probs: bool = False,
                  device: str | torch.device = "cpu") -> np.ndarray:
    """Labels (H, W) uint8 (int32 above 255 classes) of one (H, W, C) image, predicted tile by tile.

    Args:
        model: a segmentation network (its `size_rule` says which sizes it maps exactly).
        image: (H, W, C) uint8 or float image, or (H, W) grey.
        tile: output tile side (rounded down to the network's size rule; smaller images use one tile).
        overlap: pixels neighbouring tiles share (rounded so that tile starts stay on the pooling grid);
            blending weights ramp up over this width.
        batch_size: tiles per forward pass.
        preprocess: (H, W, C) array -> (C, H, W) tensor (normalisation); default uint8 / 255.
        return_probs: return the (K, H, W) float32 probabilities instead (memory K * H * W floats).
        device: where the network runs.
    """
    if image.ndim not in (2, 3) or min(image.shape[:2]) < 1:
        raise InputError(f"expected an (H, W) or (H, W, C) image, got shape {image.shape}")
    if tile < 1 or overlap < 0 or overlap >= tile:
        raise InputError(f"need tile >= 1 and 0 <= overlap < tile, got tile {tile}, overlap {overlap}")
    model.eval()
    rule = size_rule_of(model)
    tile = max(rule.output_size_for(1), (tile - rule.offset) // rule.multiple * rule.multiple + rule.offset)
    h, w = image.shape[:2]
    labels = np.zeros((h, w), np.uint8)
    probs_out = None
    for y0, band in _iter_rows(model, image, tile=tile, overlap=overlap, batch_size=batch_size,
                               preprocess=preprocess, device=torch.device(device)):
        rows = min(band.shape[1], h - y0)
        if rows <= 0:
            continue
        band = band[:, :rows, :w]
        if return_probs:
            if probs_out is None:
                probs_out = np.zeros((band.shape[0], h, w), np.float32)
            probs_out[:, y0 : y0 + rows] = band.numpy()
        else:
            if band.shape[0] > 255 and labels.dtype == np.uint8:
                labels = labels.astype(np.int32)
            labels[y0 : y0 + rows] = band.argmax(0).numpy()
    return probs_out if return_probs else labels

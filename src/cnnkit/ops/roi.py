"""RoI pooling and RoI align with torchvision's semantics, in plain differentiable PyTorch.

`roi_pool` (Fast R-CNN) rounds the box to the feature grid and max-pools each of the output bins;
`roi_align` (Mask R-CNN) avoids the rounding: each bin averages `sampling_ratio` x `sampling_ratio` bilinear
samples (adaptive when -1: ceil(roi size / output size) per box), and `aligned=True` shifts the box by half a
pixel so that pixel centres line up. Boxes are `Tensor[K, 5]` (batch index, x1, y1, x2, y2) or a list with one
`Tensor[L, 4]` per image, in input-image coordinates; `spatial_scale` maps them to the feature map
(1/16 for a stride-16 map).

Bilinear sampling is separable: a bin's average is Wy @ F @ Wx^T over the rows and columns its samples touch,
so RoI align is a gather of those rows x columns and one einsum, with no per-sample Python loop.
`MultiScaleRoIAlign` picks the FPN level of each box as torchvision does (level = floor(4 + log2(sqrt(area) /
224)), clamped to the available levels).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from cnnkit.errors import InputError

__all__ = ["MultiScaleRoIAlign", "boxes_to_rois", "roi_align", "roi_pool"]

_CHUNK_ELEMENTS = 1 << 24  # gathered values per chunk of boxes (64 MB of float32)


def boxes_to_rois(boxes: Tensor | list[Tensor]) -> Tensor:
    """RoIs as Tensor[K, 5] (batch index, x1, y1, x2, y2) from either that form or a list of Tensor[L_i, 4]."""
    if isinstance(boxes, list | tuple):
        if not boxes:
            return torch.zeros(0, 5)
        idx = torch.cat([torch.full((len(b), 1), i, dtype=b.dtype, device=b.device) for i, b in enumerate(boxes)])
        return torch.cat([idx, torch.cat(list(boxes))], dim=1)
    if boxes.ndim != 2 or boxes.shape[1] != 5:
        raise InputError(f"boxes must be Tensor[K, 5] (batch index, x1, y1, x2, y2) or a list of Tensor[L, 4], "
                         f"got shape {tuple(boxes.shape)}")
    return boxes


def _pair(size) -> tuple[int, int]:
    if isinstance(size, int):
        return size, size
    h, w = size
    return int(h), int(w)


def _round_half_away(x: Tensor) -> Tensor:
    """C's round(): halves go away from zero (torch.round goes to even)."""
    return torch.sign(x) * torch.floor(x.abs() + 0.5)


def roi_pool(input: Tensor, boxes: Tensor | list[Tensor], output_size, spatial_scale: float = 1.0) -> Tensor:
    """Max pooling over each box's bins (Fast R-CNN), torchvision's `roi_pool`.

    The box is scaled and rounded to whole cells (both ends included), split into output_size bins whose
    edges are floor/ceil of the fractional bin edges, clipped to the map; an empty bin gives 0.

    Args:
        input: Tensor[N, C, H, W] feature maps.
        boxes: Tensor[K, 5] (batch index, x1, y1, x2, y2) or a list of N Tensor[L_i, 4].
        output_size: int or (height, width) of each pooled map.
        spatial_scale: factor from box coordinates to feature-map cells.

    Returns:
        Tensor[K, C, out_h, out_w].
    """
    rois = boxes_to_rois(boxes).to(input.dtype)
    ph, pw = _pair(output_size)
    _, c, h, w = input.shape
    k = rois.shape[0]
    if k == 0:
        return input.new_zeros((0, c, ph, pw))
    coords = _round_half_away(rois[:, 1:] * spatial_scale)
    x1, y1, x2, y2 = coords.unbind(1)
    roi_w = (x2 - x1 + 1).clamp(min=1)
    roi_h = (y2 - y1 + 1).clamp(min=1)

    def edges(start, length, bins, limit):
        step = length[:, None] / bins
        t = torch.arange(bins, device=input.device, dtype=input.dtype)
        lo = (torch.floor(t * step) + start[:, None]).clamp(0, limit)
        hi = (torch.ceil((t + 1) * step) + start[:, None]).clamp(0, limit)
        return lo.long(), hi.long()  # (K, bins)

    hs, he = edges(y1, roi_h, ph, h)
    ws, we = edges(x1, roi_w, pw, w)
    mh = max(int((he - hs).max()), 1)
    mw = max(int((we - ws).max()), 1)
    rows = hs[:, :, None] + torch.arange(mh, device=input.device)  # (K, ph, mh)
    cols = ws[:, :, None] + torch.arange(mw, device=input.device)  # (K, pw, mw)
    row_ok = rows < he[:, :, None]
    col_ok = cols < we[:, :, None]
    rows = rows.clamp(max=h - 1)
    cols = cols.clamp(max=w - 1)
    batch = rois[:, 0].long()
    out = []
    per_box = c * ph * pw * mh * mw
    step = max(1, _CHUNK_ELEMENTS // max(per_box, 1))
    for s in range(0, k, step):
        sl = slice(s, s + step)
        b = batch[sl][:, None, None, None, None]
        vals = input[b, :, rows[sl][:, :, None, :, None], cols[sl][:, None, :, None, :]]  # (k, ph, pw, mh, mw, C)
        ok = (row_ok[sl][:, :, None, :, None] & col_ok[sl][:, None, :, None, :])[..., None]
        vals = vals.masked_fill(~ok, float("-inf")).amax(dim=(3, 4))  # (k, ph, pw, C)
        empty = ~ok.any(dim=(3, 4))
        out.append(vals.masked_fill(empty, 0).permute(0, 3, 1, 2))
    return torch.cat(out).contiguous()


def _axis_weights(start: Tensor, bin_size: Tensor, grid: Tensor, bins: int, size: int, max_grid: int):
    """Sample rows (or columns) and their bilinear weights along one axis, torchvision's rules.

    Returns:
        idx: Tensor[K, bins * max_grid * 2] cell indices (low and high neighbour of each sample);
        wts: Tensor[K, bins, bins * max_grid * 2], the weight of each index in each bin's average (sums of
            the bilinear weights, zero for samples outside [-1, size] and for padding samples).
    """
    k = start.shape[0]
    dev, dt = start.device, start.dtype
    p = torch.arange(bins, device=dev, dtype=dt)[None, :, None]  # (1, bins, 1)
    i = torch.arange(max_grid, device=dev, dtype=dt)[None, None, :]  # (1, 1, G)
    g = grid.to(dt)[:, None, None]  # (K, 1, 1)
    pos = start[:, None, None] + p * bin_size[:, None, None] + (i + 0.5) * bin_size[:, None, None] / g.clamp(min=1)
    valid = (i < g) & (pos >= -1.0) & (pos <= size)
    pos = pos.clamp(min=0)
    low = pos.floor().long()
    at_end = low >= size - 1
    low = torch.where(at_end, torch.full_like(low, size - 1), low)
    high = torch.where(at_end, low, low + 1)
    pos = torch.where(at_end, low.to(dt), pos)
    frac = pos - low.to(dt)
    w_low = (1 - frac) * valid
    w_high = frac * valid
    idx = torch.stack((low, high), dim=-1).reshape(k, -1)  # (K, bins*G*2)
    w = torch.stack((w_low, w_high), dim=-1).reshape(k, bins, max_grid * 2)  # (K, bins, G*2)
    # place each bin's weights in its own block of columns: (K, bins, bins*G*2)
    eye = torch.eye(bins, device=dev, dtype=dt)
    wts = (eye[None, :, :, None] * w[:, None, :, :]).reshape(k, bins, bins * max_grid * 2)
    return idx, wts


def roi_align(input: Tensor, boxes: Tensor | list[Tensor], output_size, spatial_scale: float = 1.0,
              sampling_ratio: int = -1, aligned: bool = False) -> Tensor:
    """Bilinear RoI pooling without rounding (Mask R-CNN), torchvision's `roi_align`.

    Args:
        input: Tensor[N, C, H, W] feature maps.
        boxes: Tensor[K, 5] (batch index, x1, y1, x2, y2) or a list of N Tensor[L_i, 4].
        output_size: int or (height, width) of each pooled map.
        spatial_scale: factor from box coordinates to feature-map cells.
        sampling_ratio: samples per bin along each axis; -1 (or 0) picks ceil(roi size / output size) per box.
        aligned: shift boxes by -0.5 cell so a box [0, 0, W, H] covers the pixel centres exactly (recommended);
            False is the original behaviour (boxes at least one cell wide).

    Returns:
        Tensor[K, C, out_h, out_w].
    """
    rois = boxes_to_rois(boxes).to(input.dtype)
    ph, pw = _pair(output_size)
    _, c, h, w = input.shape
    k = rois.shape[0]
    if k == 0:
        return input.new_zeros((0, c, ph, pw))
    offset = 0.5 if aligned else 0.0
    coords = rois[:, 1:] * spatial_scale - offset
    x1, y1, x2, y2 = coords.unbind(1)
    roi_w, roi_h = x2 - x1, y2 - y1
    if not aligned:
        roi_w, roi_h = roi_w.clamp(min=1.0), roi_h.clamp(min=1.0)
    bin_h, bin_w = roi_h / ph, roi_w / pw
    if sampling_ratio > 0:
        gh = torch.full((k,), sampling_ratio, device=input.device)
        gw = gh
    else:
        gh = torch.ceil(roi_h / ph).long().clamp(min=0)
        gw = torch.ceil(roi_w / pw).long().clamp(min=0)
    max_gh, max_gw = max(int(gh.max()), 1), max(int(gw.max()), 1)
    count = (gh * gw).clamp(min=1).to(input.dtype)
    ry, wy = _axis_weights(y1, bin_h, gh, ph, h, max_gh)  # (K, R), (K, ph, R)
    rx, wx = _axis_weights(x1, bin_w, gw, pw, w, max_gw)  # (K, S), (K, pw, S)
    wy = wy / count[:, None, None]
    batch = rois[:, 0].long()
    out = []
    per_box = c * ry.shape[1] * rx.shape[1]
    step = max(1, _CHUNK_ELEMENTS // max(per_box, 1))
    for s in range(0, k, step):
        sl = slice(s, s + step)
        patch = input[batch[sl][:, None, None], :, ry[sl][:, :, None], rx[sl][:, None, :]]  # (k, R, S, C)
        out.append(torch.einsum("kpr,krsc,kqs->kcpq", wy[sl], patch, wx[sl]))
    return torch.cat(out).contiguous()


class MultiScaleRoIAlign(nn.Module):
    """RoI align over an FPN: each box is pooled from the level that suits its size (torchvision's module).

    Args:
        featmap_names: keys of the feature dict to use, finest first.
        output_size: pooled size.
        sampling_ratio: as in `roi_align`.
        canonical_scale: box size that maps to `canonical_level` (224, the ImageNet crop).
        canonical_level: FPN level of a canonical box (4, as in the FPN paper).

    Call with `(features: dict[str, Tensor[N, C, H_l, W_l]], boxes: list[Tensor[L_i, 4]],
    image_shapes: list[(H, W)])`; returns Tensor[sum L_i, C, out_h, out_w] in the order of the boxes.
    A level's scale is inferred as 2 ** round(log2(H_l / H)), the level number as -log2(scale).
    """

    def __init__(self, featmap_names: list[str], output_size, sampling_ratio: int = 2, *,
                 canonical_scale: int = 224, canonical_level: int = 4) -> None:
        super().__init__()
        self.featmap_names = list(featmap_names)
        self.output_size = _pair(output_size)
        self.sampling_ratio = sampling_ratio
        self.canonical_scale = canonical_scale
        self.canonical_level = canonical_level

    def map_levels(self, boxes: Tensor, k_min: int, k_max: int) -> Tensor:
        """Level index (0 = finest used level) of each box Tensor[K, 4]: Tensor[K] int64."""
        s = torch.sqrt((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))
        level = torch.floor(self.canonical_level + torch.log2(s / self.canonical_scale) + 1e-6)
        return (level.clamp(min=k_min, max=k_max) - k_min).to(torch.int64)

    def forward(self, x: dict[str, Tensor], boxes: list[Tensor], image_shapes: list[tuple[int, int]]) -> Tensor:
        feats = [x[name] for name in self.featmap_names]
        max_h = max(s[0] for s in image_shapes)
        max_w = max(s[1] for s in image_shapes)
        scales = []
        for f in feats:
            approx = max(f.shape[-2] / max_h, f.shape[-1] / max_w)
            scales.append(2.0 ** round(math.log2(approx)))
        rois = boxes_to_rois(boxes)
        if len(feats) == 1:
            return roi_align(feats[0], rois, self.output_size, scales[0], self.sampling_ratio)
        k_min = int(-math.log2(scales[0]))
        k_max = int(-math.log2(scales[-1]))
        levels = self.map_levels(rois[:, 1:], k_min, k_max)
        c = feats[0].shape[1]
        out = feats[0].new_zeros((rois.shape[0], c, *self.output_size))
        for lvl, (f, scale) in enumerate(zip(feats, scales, strict=True)):
            idx = torch.where(levels == lvl)[0]
            if idx.numel():
                out[idx] = roi_align(f, rois[idx], self.output_size, scale, self.sampling_ratio).to(out.dtype)
        return out

"""RoI pooling and RoI align with torchvision's semantics, in plain differentiable PyTorch.

`roi_pool` (Fast R-CNN) rounds the box to the feature grid and max-pools each of the output bins;
`roi_align` (Mask R-CNN) avoids the rounding: each bin averages `sampling_ratio` x `sampling_ratio` bilinear
samples (adaptive when -1: ceil(roi size / output size) per box), and `aligned=True` shifts the box by half a
pixel so that pixel centres line up. Boxes are `Tensor[K, 5]` (batch index, x1, y1, x2, y2) or a list with one
`Tensor[L, 4]` per image, in input-image coordinates; `spatial_scale` maps them to the feature map
(1/16 for a stride-16 map).

RoI align lays the sample points of all boxes of one image (and one sample grid) out as one image and reads
them with a single `grid_sample` call (points clamped into the map first, so its values are torchvision's
bilinear() exactly), then an average pool per bin. RoI pool is adaptive max pooling of each box's crop whenever
torchvision's float bin edges equal the exact integer ones (nearly always), and a padded gather otherwise.
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

    def edges(start, length, bins):  # torchvision's float arithmetic, before clipping to the map
        step = length[:, None] / bins
        t = torch.arange(bins, device=input.device, dtype=input.dtype)
        return (torch.floor(t * step) + start[:, None]).long(), (torch.ceil((t + 1) * step) + start[:, None]).long()

    hs, he = edges(y1, roi_h, ph)
    ws, we = edges(x1, roi_w, pw)
    batch = rois[:, 0].long()
    out = input.new_empty((k, c, ph, pw))
    # Fast path: when the bin edges are the exact integers floor/ceil(p * size / bins) (almost always: the float
    # edges only differ when rounding lands just below a whole number), a box is adaptive max pooling of its crop,
    # the part outside the map padded with -inf (a bin wholly outside gives 0, as torchvision's empty bin).
    ih, iw = roi_h.long(), roi_w.long()
    py = torch.arange(ph, device=input.device)
    px = torch.arange(pw, device=input.device)
    y0, x0 = y1.long(), x1.long()
    exact = ((hs == y0[:, None] + py * ih[:, None] // ph).all(1)
             & (he == y0[:, None] - (-(py + 1) * ih[:, None] // ph)).all(1)
             & (ws == x0[:, None] + px * iw[:, None] // pw).all(1)
             & (we == x0[:, None] - (-(px + 1) * iw[:, None] // pw)).all(1)
             & (ih * iw <= 4 * h * w))  # a box far larger than the map: the padded crop would be wasteful
    fast = torch.where(exact)[0]
    if len(fast):
        import torch.nn.functional as F

        for i, b, ya, xa, hh, ww in zip(fast.tolist(), batch[fast].tolist(), y0[fast].tolist(), x0[fast].tolist(),
                                        ih[fast].tolist(), iw[fast].tolist(), strict=True):
            top, left = max(0, -ya), max(0, -xa)
            bottom, right = max(0, ya + hh - h), max(0, xa + ww - w)
            if top + bottom >= hh or left + right >= ww:  # wholly outside the map
                out[i] = 0
                continue
            crop = input[b, :, ya + top:ya + hh - bottom, xa + left:xa + ww - right]
            if top or bottom or left or right:
                crop = F.pad(crop, (left, right, top, bottom), value=float("-inf"))
                pooled = F.adaptive_max_pool2d(crop, (ph, pw))
                out[i] = pooled.masked_fill(torch.isneginf(pooled), 0)
            else:
                out[i] = F.adaptive_max_pool2d(crop, (ph, pw))
    slow = torch.where(~exact)[0]
    if len(slow):
        hs, he, ws, we = hs.clamp(0, h), he.clamp(0, h), ws.clamp(0, w), we.clamp(0, w)
        out[slow] = _roi_pool_gather(input, batch[slow], hs[slow], he[slow], ws[slow], we[slow])
    return out


def _roi_pool_gather(input: Tensor, batch: Tensor, hs: Tensor, he: Tensor, ws: Tensor, we: Tensor) -> Tensor:
    """Max over bins [hs, he) x [ws, we) (K, bins) of each box's map, by padded gathers; empty bins give 0."""
    _, c, h, w = input.shape
    k, ph = hs.shape
    pw = ws.shape[1]
    mh = max(int((he - hs).max()), 1)
    mw = max(int((we - ws).max()), 1)
    rows = hs[:, :, None] + torch.arange(mh, device=input.device)  # (K, ph, mh)
    cols = ws[:, :, None] + torch.arange(mw, device=input.device)  # (K, pw, mw)
    row_ok = rows < he[:, :, None]
    col_ok = cols < we[:, :, None]
    rows = rows.clamp(max=h - 1)
    cols = cols.clamp(max=w - 1)
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
    return torch.cat(out)


def _axis_samples(start: Tensor, bin_size: Tensor, grid: Tensor, bins: int, size: int, max_grid: int):
    """Sample coordinates along one axis and whether each counts, torchvision's rules.

    Returns:
        pos: Tensor[K, bins, max_grid], clamped into [0, size - 1] as torchvision's bilinear() does for points
            in [-1, size] (a point in [-1, 0) reads row 0, one in (size - 1, size] reads the last row);
        valid: Tensor[K, bins, max_grid] bool: inside [-1, size] and not padding (index < the box's grid).
    """
    dev, dt = start.device, start.dtype
    p = torch.arange(bins, device=dev, dtype=dt)[None, :, None]  # (1, bins, 1)
    i = torch.arange(max_grid, device=dev, dtype=dt)[None, None, :]  # (1, 1, G)
    g = grid.to(dt)[:, None, None]  # (K, 1, 1)
    b = bin_size[:, None, None]
    pos = start[:, None, None] + p * b + (i + 0.5) * b / g.clamp(min=1)
    valid = (i < g) & (pos >= -1.0) & (pos <= size)
    return pos.clamp(min=0, max=size - 1), valid


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
    if sampling_ratio > 0:
        gh = torch.full((k,), sampling_ratio, device=input.device, dtype=torch.int64)
        gw = gh
    else:
        gh = torch.ceil(roi_h / ph).long().clamp(min=0)
        gw = torch.ceil(roi_w / pw).long().clamp(min=0)
    count = (gh * gw).clamp(min=1).to(input.dtype)
    batch = rois[:, 0].long()
    # Boxes of one image with similar sample grids go through one grid_sample call: every sample point of the
    # chunk laid out as one (boxes * ph * Gh, pw * Gw) image. Points are clamped into the map first, so
    # grid_sample's own border rule never applies and the result is torchvision's bilinear() exactly.
    key = (batch * (int(gh.max()) + 1) + gh) * (int(gw.max()) + 1) + gw
    order = torch.argsort(key, stable=True)
    out = input.new_empty((k, c, ph, pw))
    pos = 0
    keys = key[order].tolist()
    while pos < k:
        img, ghx, gwx = int(batch[order[pos]]), int(gh[order[pos]]), int(gw[order[pos]])
        per_box = c * ph * pw * max(ghx, 1) * max(gwx, 1)
        step = max(1, _CHUNK_ELEMENTS // per_box)
        end = pos
        while end < k and end - pos < step and keys[end] == keys[pos]:
            end += 1
        idx = order[pos:end]
        out[idx] = _align_chunk(input[img:img + 1], x1[idx], y1[idx], roi_w[idx] / pw, roi_h[idx] / ph,
                                gh[idx], gw[idx], count[idx], ph, pw, h, w, max(ghx, 1), max(gwx, 1)).to(out.dtype)
        pos = end
    return out


def _align_chunk(fm, x1, y1, bin_w, bin_h, gh, gw, count, ph, pw, h, w, max_gh, max_gw) -> Tensor:
    """RoI align of boxes on one feature map fm (1, C, H, W), all with the same grid of gh x gw samples per bin."""
    import torch.nn.functional as F

    n = x1.shape[0]
    ys, vy = _axis_samples(y1, bin_h, gh, ph, h, max_gh)  # (n, ph, Gh)
    xs, vx = _axis_samples(x1, bin_w, gw, pw, w, max_gw)  # (n, pw, Gw)
    # grid_sample, align_corners=True: -1 is the centre of the first cell, +1 that of the last; a point that must
    # not count is sent far outside, where zero padding reads 0 (a 1-cell axis cannot, so it is masked instead)
    far = h > 1 and w > 1
    gy = ys * (2.0 / (h - 1)) - 1.0 if h > 1 else torch.zeros_like(ys)
    gx = xs * (2.0 / (w - 1)) - 1.0 if w > 1 else torch.zeros_like(xs)
    if far:
        gy = gy.masked_fill(~vy, -5.0)
        gx = gx.masked_fill(~vx, -5.0)
    gy = gy.reshape(n, ph * max_gh, 1).expand(n, ph * max_gh, pw * max_gw)
    gx = gx.reshape(n, 1, pw * max_gw).expand(n, ph * max_gh, pw * max_gw)
    grid = torch.stack((gx, gy), dim=-1).reshape(1, n * ph * max_gh, pw * max_gw, 2)
    vals = F.grid_sample(fm.contiguous(memory_format=torch.channels_last), grid, mode="bilinear",
                         padding_mode="zeros", align_corners=True)  # (1, C, n * ph * Gh, pw * Gw)
    if not far:
        vals = vals * _grid_mask(vy, vx, vals.dtype)
    # every box of the chunk has the same grid, so the bin average is an average pool over Gh x Gw blocks
    pooled = F.avg_pool2d(vals, (max_gh, max_gw)) * (max_gh * max_gw)  # (1, C, n * ph, pw) sums
    pooled = pooled.reshape(-1, n, ph, pw).transpose(0, 1)
    return pooled / count[:, None, None, None]


def _grid_mask(vy: Tensor, vx: Tensor, dtype) -> Tensor:
    """(n * ph * Gh, pw * Gw) mask of the sample points that count, in the layout of the sampling grid."""
    n = vy.shape[0]
    m = vy.reshape(n, -1, 1) & vx.reshape(n, 1, -1)  # (n, ph * Gh, pw * Gw)
    return m.reshape(-1, m.shape[-1]).to(dtype)


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

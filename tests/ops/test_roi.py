"""RoI align and RoI pool against per-sample Python loops written from torchvision's C++ kernels."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from cnnkit.ops import MultiScaleRoIAlign, roi_align, roi_pool


def bilinear(fm, y, x):
    """fm (C, H, W) at (y, x), torchvision's rules: zero outside [-1, size], edge clamping."""
    _, h, w = fm.shape
    if y < -1.0 or y > h or x < -1.0 or x > w:
        return torch.zeros(fm.shape[0], dtype=fm.dtype)
    y, x = max(y, 0.0), max(x, 0.0)
    y0, x0 = int(y), int(x)
    if y0 >= h - 1:
        y0 = y1 = h - 1
        y = float(y0)
    else:
        y1 = y0 + 1
    if x0 >= w - 1:
        x0 = x1 = w - 1
        x = float(x0)
    else:
        x1 = x0 + 1
    ly, lx = y - y0, x - x0
    return ((1 - ly) * (1 - lx) * fm[:, y0, x0] + (1 - ly) * lx * fm[:, y0, x1]
            + ly * (1 - lx) * fm[:, y1, x0] + ly * lx * fm[:, y1, x1])


def roi_align_loop(inp, rois, out_hw, scale, ratio, aligned):
    ph, pw = out_hw
    out = torch.zeros(len(rois), inp.shape[1], ph, pw, dtype=inp.dtype)
    off = 0.5 if aligned else 0.0
    for k, (b, x1, y1, x2, y2) in enumerate(rois.tolist()):
        sx, sy, ex, ey = x1 * scale - off, y1 * scale - off, x2 * scale - off, y2 * scale - off
        rw, rh = ex - sx, ey - sy
        if not aligned:
            rw, rh = max(rw, 1.0), max(rh, 1.0)
        bh, bw = rh / ph, rw / pw
        gh = ratio if ratio > 0 else math.ceil(rh / ph)
        gw = ratio if ratio > 0 else math.ceil(rw / pw)
        count = max(gh * gw, 1)
        for i in range(ph):
            for j in range(pw):
                acc = torch.zeros(inp.shape[1], dtype=inp.dtype)
                for iy in range(gh):
                    y = sy + i * bh + (iy + 0.5) * bh / gh
                    for ix in range(gw):
                        x = sx + j * bw + (ix + 0.5) * bw / gw
                        acc += bilinear(inp[int(b)], y, x)
                out[k, :, i, j] = acc / count
    return out


def roi_pool_loop(inp, rois, out_hw, scale):
    ph, pw = out_hw
    _, c, h, w = inp.shape
    out = torch.zeros(len(rois), c, ph, pw, dtype=inp.dtype)

    def rnd(v):  # C's round: halves away from zero
        return int(math.floor(abs(v) + 0.5)) * (1 if v >= 0 else -1)

    for k, (b, x1, y1, x2, y2) in enumerate(rois.tolist()):
        sx, sy, ex, ey = rnd(x1 * scale), rnd(y1 * scale), rnd(x2 * scale), rnd(y2 * scale)
        rw, rh = max(ex - sx + 1, 1), max(ey - sy + 1, 1)
        f = np.float32 if inp.dtype == torch.float32 else np.float64  # torchvision computes bins in the input type
        bh, bw = f(rh) / f(ph), f(rw) / f(pw)
        for i in range(ph):
            for j in range(pw):
                hs = min(max(math.floor(f(i) * bh) + sy, 0), h)
                he = min(max(math.ceil(f(i + 1) * bh) + sy, 0), h)
                ws = min(max(math.floor(f(j) * bw) + sx, 0), w)
                we = min(max(math.ceil(f(j + 1) * bw) + sx, 0), w)
                if he > hs and we > ws:
                    out[k, :, i, j] = inp[int(b), :, hs:he, ws:we].amax(dim=(1, 2))
    return out


def random_rois(k, n, size, seed, spill=0.3):
    """Boxes inside and across the border of a size x size image (some thinner than a cell)."""
    g = torch.Generator().manual_seed(seed)
    xy = (torch.rand(k, 2, generator=g) * (1 + 2 * spill) - spill) * size
    wh = torch.rand(k, 2, generator=g) * size * 0.8
    b = torch.randint(0, n, (k, 1), generator=g).double()
    return torch.cat([b, xy.double(), (xy + wh).double()], 1)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), ratio=st.sampled_from([-1, 1, 2, 3]), aligned=st.booleans(),
       out=st.sampled_from([(1, 1), (2, 3), (4, 4)]), scale=st.sampled_from([1.0, 0.5, 0.25]))
def test_roi_align_matches_loop(seed, ratio, aligned, out, scale):
    g = torch.Generator().manual_seed(seed)
    inp = torch.randn(2, 3, 7, 9, generator=g, dtype=torch.float64)
    rois = random_rois(4, 2, 9 / scale, seed)
    got = roi_align(inp, rois, out, scale, ratio, aligned)
    assert torch.allclose(got, roi_align_loop(inp, rois, out, scale, ratio, aligned), atol=1e-10)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), out=st.sampled_from([(1, 1), (2, 3), (3, 3)]),
       scale=st.sampled_from([1.0, 0.5, 0.25]))
def test_roi_pool_matches_loop(seed, out, scale):
    g = torch.Generator().manual_seed(seed)
    inp = torch.randn(2, 3, 7, 9, generator=g, dtype=torch.float64)
    rois = random_rois(5, 2, 9 / scale, seed)
    rois[0, 1:] = torch.tensor([1.5, 2.5, 1.5, 2.5]) / scale  # half-way rounding, a one-cell box
    assert torch.equal(roi_pool(inp, rois, out, scale), roi_pool_loop(inp, rois, out, scale))


def test_roi_ops_take_lists_and_backpropagate():
    inp = torch.randn(2, 4, 8, 8, requires_grad=True)
    boxes = [torch.tensor([[0.0, 0.0, 8.0, 8.0]]), torch.tensor([[1.0, 2.0, 5.0, 7.0], [7.5, 7.5, 8.0, 8.0]])]
    a = roi_align(inp, boxes, 2, 1.0, 2, True)
    p = roi_pool(inp, boxes, (2, 2))
    assert a.shape == p.shape == (3, 4, 2, 2)
    (a.sum() + p.sum()).backward()
    assert inp.grad is not None and inp.grad.abs().sum() > 0
    # the whole map with aligned=True and a 1x1 output averages every pixel centre evenly
    full = roi_align(inp.detach(), [torch.tensor([[0.0, 0.0, 8.0, 8.0]])], 1, 1.0, 8, True)
    assert torch.allclose(full[0, :, 0, 0], inp.detach()[0].mean(dim=(1, 2)), atol=1e-6)
    assert roi_align(inp, torch.zeros(0, 5), 3).shape == (0, 4, 3, 3)


def test_multiscale_roi_align_picks_levels_like_fpn():
    feats = {"p2": torch.randn(1, 2, 64, 64), "p3": torch.randn(1, 2, 32, 32), "p4": torch.randn(1, 2, 16, 16)}
    pooler = MultiScaleRoIAlign(["p2", "p3", "p4"], 3, 2)
    boxes = [torch.tensor([[0.0, 0.0, 20.0, 20.0], [0.0, 0.0, 120.0, 120.0], [10.0, 10.0, 250.0, 250.0]])]
    out = pooler(feats, boxes, [(256, 256)])
    assert pooler.map_levels(boxes[0], 2, 4).tolist() == [0, 1, 2]
    for row, (name, scale) in enumerate([("p2", 0.25), ("p3", 0.125), ("p4", 0.0625)]):
        ref = roi_align(feats[name], [boxes[0][row:row + 1]], 3, scale, 2)
        assert torch.allclose(out[row], ref[0])
    with pytest.raises(KeyError):
        pooler({"p2": feats["p2"]}, boxes, [(256, 256)])


def test_roi_pool_float32_bins_that_round_past_a_whole_number():
    # 14 cells in 13 bins: in float32 13 * (14 / 13) is just above 14, so torchvision's last bin ends at 15 (then
    # clipped), not 14: the exact adaptive-pooling fast path must not be taken for this box
    g = torch.Generator().manual_seed(0)
    inp = torch.randn(1, 2, 20, 20, generator=g)
    rois = torch.tensor([[0.0, 0.0, 0.0, 13.0, 13.0], [0.0, 6.0, 2.0, 19.0, 15.0], [0.0, -4.0, 6.0, 24.0, 30.0]])
    assert torch.equal(roi_pool(inp, rois, (13, 13)), roi_pool_loop(inp, rois, (13, 13), 1.0))


def test_roi_align_on_a_one_cell_high_map():
    inp = torch.randn(1, 3, 1, 6, dtype=torch.float64)
    rois = torch.tensor([[0.0, -2.0, -1.5, 3.0, 0.7], [0.0, 1.0, 0.0, 6.5, 3.0]], dtype=torch.float64)
    for aligned in (False, True):
        got = roi_align(inp, rois, (2, 3), 1.0, 2, aligned)
        assert torch.allclose(got, roi_align_loop(inp, rois, (2, 3), 1.0, 2, aligned), atol=1e-10)


def test_roi_align_and_pool_gradients_match_the_loops():
    g = torch.Generator().manual_seed(3)
    inp = torch.randn(2, 2, 6, 7, generator=g, dtype=torch.float64, requires_grad=True)
    rois = random_rois(5, 2, 7, 3)
    up = torch.randn(5, 2, 2, 3, generator=g, dtype=torch.float64)
    for fast, slow in ((lambda x: roi_align(x, rois, (2, 3), 1.0, -1, True),
                        lambda x: roi_align_loop(x, rois, (2, 3), 1.0, -1, True)),
                       (lambda x: roi_pool(x, rois, (2, 3)), lambda x: roi_pool_loop(x, rois, (2, 3), 1.0))):
        (ga,) = torch.autograd.grad((fast(inp) * up).sum(), inp)
        (gb,) = torch.autograd.grad((slow(inp) * up).sum(), inp)
        assert torch.allclose(ga, gb, atol=1e-10)

"""BoxCoder round trip and torchvision's formulas; anchors against a grid computed by hand."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from cnnkit.errors import InputError
from cnnkit.ops import AnchorGenerator, BoxCoder, cell_anchors


def boxes(n, seed):
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g, dtype=torch.float64) * 100
    return torch.cat([xy, xy + 1 + torch.rand(n, 2, generator=g, dtype=torch.float64) * 50], 1)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), weights=st.sampled_from([(10.0, 10.0, 5.0, 5.0), (1.0, 1.0, 1.0, 1.0)]))
def test_box_coder_round_trip(seed, weights):
    coder = BoxCoder(weights)
    gt, anchors = boxes(7, seed), boxes(7, seed + 1)
    codes = coder.encode_single(gt, anchors)
    assert torch.allclose(coder.decode_single(codes, anchors), gt, atol=1e-9)
    assert torch.allclose(coder.decode(codes, [anchors[:3], anchors[3:]])[:, 0], gt, atol=1e-9)
    parts = coder.encode([gt[:3], gt[3:]], [anchors[:3], anchors[3:]])
    assert torch.allclose(torch.cat(parts), codes)


def test_box_coder_formula_and_clamp():
    coder = BoxCoder((10.0, 10.0, 5.0, 5.0))
    anchor = torch.tensor([[0.0, 0.0, 10.0, 20.0]])  # centre (5, 10), size (10, 20)
    gt = torch.tensor([[2.0, 4.0, 22.0, 24.0]])  # centre (12, 14), size (20, 20)
    dx, dy, dw, dh = coder.encode_single(gt, anchor)[0].tolist()
    assert [dx, dy] == pytest.approx([10 * 7 / 10, 10 * 4 / 20])
    assert [dw, dh] == pytest.approx([5 * math.log(2), 5 * math.log(1)])
    huge = coder.decode_single(torch.tensor([[0.0, 0.0, 1000.0, 1000.0]]), anchor)
    assert huge[0, 2].item() == pytest.approx(5 + 0.5 * 10 * 1000 / 16)  # exp(log(1000/16)) at most
    with pytest.raises(InputError):
        coder.encode_single(gt, torch.zeros(2, 4))


def test_cell_anchors_by_hand():
    base = cell_anchors((32,), (0.5, 1.0, 2.0))
    # ratio = h / w: w = 32 / sqrt(r), h = 32 * sqrt(r); half sizes rounded
    expected = []
    for r in (0.5, 1.0, 2.0):
        w, h = 32 / math.sqrt(r), 32 * math.sqrt(r)
        expected.append([round(-w / 2), round(-h / 2), round(w / 2), round(h / 2)])
    assert base.tolist() == expected


def test_anchor_generator_grid_by_hand():
    gen = AnchorGenerator(sizes=((16,), (32, 64)), aspect_ratios=((1.0,), (0.5, 2.0)))
    assert gen.num_anchors_per_location() == [1, 4]
    images = torch.zeros(2, 3, 32, 48)
    feats = [torch.zeros(2, 8, 4, 6), torch.zeros(2, 8, 2, 3)]  # strides 8 and 16
    anchors = gen(images, feats)
    assert len(anchors) == 2 and anchors[0].shape == (4 * 6 * 1 + 2 * 3 * 4, 4)
    level0 = anchors[0][:24]
    for i in range(4):
        for j in range(6):
            assert level0[i * 6 + j].tolist() == [j * 8 - 8, i * 8 - 8, j * 8 + 8, i * 8 + 8]
    level1 = anchors[0][24:].reshape(2, 3, 4, 4)
    base = cell_anchors((32, 64), (0.5, 2.0))
    for i in range(2):
        for j in range(3):
            shift = torch.tensor([j * 16, i * 16, j * 16, i * 16], dtype=torch.float32)
            assert torch.equal(level1[i, j], base + shift)
    with pytest.raises(InputError):
        gen(images, feats[:1])

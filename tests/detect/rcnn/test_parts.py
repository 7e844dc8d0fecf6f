"""Anchors, RPN box encoding, matching and sampling of the region-proposal detectors, against slow references."""

from __future__ import annotations

import hypothesis.strategies as st
import torch
from hypothesis import given, settings

from cnnkit.detect.rcnn.matcher import BELOW_LOW, BETWEEN, match, sample
from cnnkit.detect.rcnn.rpn import flatten_levels
from cnnkit.ops import AnchorGenerator, BoxCoder, box_iou


def test_anchors_of_a_feature_map_match_a_hand_computed_grid():
    gen = AnchorGenerator(sizes=((32,),), aspect_ratios=((0.5, 1.0, 2.0),))
    anchors = gen(torch.zeros(1, 3, 32, 48), [torch.zeros(1, 8, 2, 3)])[0]   # stride 16, grid 2 x 3
    # base anchors of area 32^2, h/w = r, centred on 0 (torchvision rounds the half sizes)
    base = []
    for r in (0.5, 1.0, 2.0):
        w, h = 32 / r ** 0.5, 32 * r ** 0.5
        base.append([round(-w / 2), round(-h / 2), round(w / 2), round(h / 2)])
    expected = [[bx1 + 16 * x, by1 + 16 * y, bx2 + 16 * x, by2 + 16 * y]
                for y in range(2) for x in range(3) for bx1, by1, bx2, by2 in base]
    assert anchors.tolist() == [[float(v) for v in row] for row in expected]


def test_flattened_rpn_outputs_follow_the_anchor_order():
    # logit of anchor a at (y, x) = 100 y + 10 x + a; deltas = the same value in all four slots
    a, h, w = 3, 2, 3
    val = torch.tensor([[[100 * y + 10 * x + k for x in range(w)] for y in range(h)] for k in range(a)]).float()
    logits = val[None]                                                           # (1, A, h, w)
    deltas = val[:, None].expand(a, 4, h, w).reshape(1, 4 * a, h, w)
    flat_l, flat_d, counts = flatten_levels([logits], [deltas])
    expected = torch.tensor([100 * y + 10 * x + k for y in range(h) for x in range(w) for k in range(a)]).float()
    assert counts == [h * w * a]
    assert torch.equal(flat_l[0], expected)
    assert torch.equal(flat_d[0], expected[:, None].expand(-1, 4))


boxes_st = st.lists(st.tuples(st.floats(0, 100), st.floats(0, 100), st.floats(1, 60), st.floats(1, 60)),
                    min_size=1, max_size=12)


def _xyxy(rows):
    t = torch.tensor(rows, dtype=torch.float64)
    return torch.cat([t[:, :2], t[:, :2] + t[:, 2:]], 1)


@settings(max_examples=40, deadline=None)
@given(boxes_st, st.integers(0, 2 ** 31 - 1))
def test_rpn_box_encoding_round_trips(rows, seed):
    anchors = _xyxy(rows)
    g = torch.Generator().manual_seed(seed)
    gt = anchors + torch.randn(anchors.shape, generator=g, dtype=torch.float64) * 5
    gt = torch.cat([gt[:, :2], torch.maximum(gt[:, 2:], gt[:, :2] + 0.5)], 1)
    for coder in (BoxCoder(weights=(1.0, 1.0, 1.0, 1.0)), BoxCoder()):      # RPN's and the head's weights
        codes = coder.encode_single(gt, anchors)
        back = coder.decode_single(codes, anchors)
        torch.testing.assert_close(back, gt, atol=1e-6, rtol=1e-6)


def _match_reference(iou, high, low, allow_low):
    g, n = iou.shape
    out = []
    for j in range(n):
        if g == 0:
            out.append(BELOW_LOW)
            continue
        best = max(range(g), key=lambda i: (iou[i, j].item(), -i))
        v = iou[best, j].item()
        out.append(best if v >= high else (BELOW_LOW if v < low else BETWEEN))
    if allow_low and g:
        for i in range(g):
            top = max(iou[i, j].item() for j in range(n))
            for j in range(n):
                if top > 0 and iou[i, j].item() == top:
                    out[j] = max(range(g), key=lambda k: (iou[k, j].item(), -k))
    return out


@settings(max_examples=40, deadline=None)
@given(boxes_st, boxes_st, st.booleans())
def test_match_equals_a_python_loop(gt_rows, pred_rows, allow_low):
    iou = box_iou(_xyxy(gt_rows), _xyxy(pred_rows))
    assert match(iou, 0.7, 0.3, allow_low).tolist() == _match_reference(iou, 0.7, 0.3, allow_low)


def test_match_without_ground_truth_is_all_background():
    assert match(torch.zeros(0, 5), 0.7, 0.3, True).tolist() == [BELOW_LOW] * 5


def test_sample_respects_the_positive_fraction_and_the_batch():
    labels = torch.tensor([1] * 30 + [0] * 100 + [-1] * 20)
    pos, neg = sample(labels, 64, 0.25)
    assert len(pos) == 16 and len(neg) == 48
    assert (labels[pos] == 1).all() and (labels[neg] == 0).all() and len(set(pos.tolist())) == 16
    pos, neg = sample(torch.tensor([1, 0, 0, -1]), 64, 0.25)   # fewer than asked: all of them
    assert sorted(pos.tolist()) == [0] and sorted(neg.tolist()) == [1, 2]

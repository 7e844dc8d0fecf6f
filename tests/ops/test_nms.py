"""NMS, batched NMS and detection post-processing against a plain Python loop."""

from __future__ import annotations

import importlib

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from cnnkit.ops import batched_nms, box_iou, filter_detections, nms

nms_module = importlib.import_module("cnnkit.ops.nms")  # the package attribute `nms` is the function


def nms_loop(boxes, scores, thr):
    """The course's NMS: keep the best, remove those overlapping it by more than thr, repeat."""
    order = sorted(range(len(scores)), key=lambda i: (-float(scores[i]), i))
    iou = box_iou(boxes, boxes)
    keep, removed = [], set()
    for i in order:
        if i in removed:
            continue
        keep.append(i)
        removed.update(j for j in order if iou[i, j] > thr)
    return keep


def batched_loop(boxes, scores, idxs, thr):
    keep = []
    for c in idxs.unique().tolist():
        rows = torch.where(idxs == c)[0]
        keep += rows[nms_loop(boxes[rows], scores[rows], thr)].tolist()
    return sorted(keep, key=lambda i: (-float(scores[i]), i))


def clustered(n, seed, k=4, size=100.0, integer=False):
    """Boxes jittered around a few objects (what a detector gives NMS), sometimes on a coarse grid to make ties."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.rand(max(k, 1), 2, generator=g) * size
    wh0 = 5 + torch.rand(max(k, 1), 2, generator=g) * size / 3
    pick = torch.randint(0, max(k, 1), (n,), generator=g)
    cxy = centres[pick] + torch.randn(n, 2, generator=g) * wh0[pick] * 0.2
    wh = wh0[pick] * (0.7 + 0.6 * torch.rand(n, 2, generator=g))
    boxes = torch.cat([cxy - wh / 2, cxy + wh / 2], 1)
    scores = torch.rand(n, generator=g)
    if integer:
        boxes, scores = boxes.round(), (scores * 4).round() / 4  # touching boxes and equal scores
    return boxes, scores


@settings(max_examples=60, deadline=None)
@given(n=st.integers(0, 60), seed=st.integers(0, 100_000), k=st.integers(1, 6),
       thr=st.sampled_from([0.0, 0.1, 0.3, 0.5, 0.7, 0.95]), integer=st.booleans())
def test_nms_matches_loop(n, seed, k, thr, integer):
    boxes, scores = clustered(n, seed, k, integer=integer)
    assert nms(boxes, scores, thr).tolist() == nms_loop(boxes, scores, thr)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(0, 60), seed=st.integers(0, 100_000), classes=st.integers(1, 4),
       thr=st.sampled_from([0.0, 0.3, 0.5, 0.8]), integer=st.booleans())
def test_batched_nms_matches_per_class_loop(n, seed, classes, thr, integer):
    boxes, scores = clustered(n, seed, 3, integer=integer)
    idxs = torch.randint(0, classes, (n,), generator=torch.Generator().manual_seed(seed))
    assert batched_nms(boxes, scores, idxs, thr).tolist() == batched_loop(boxes, scores, idxs, thr)


def test_nms_large_input_matches_loop_and_float_types():
    boxes, scores = clustered(600, 1, 12, size=400)
    ref = nms_loop(boxes, scores, 0.5)
    assert nms(boxes, scores, 0.5).tolist() == ref
    assert nms(boxes.double(), scores.double(), 0.5).tolist() == nms_loop(boxes.double(), scores.double(), 0.5)
    assert nms(boxes.round().int(), scores, 0.5).dtype == torch.int64


def test_nms_edge_cases():
    empty = torch.zeros(0, 4)
    assert nms(empty, torch.zeros(0), 0.5).tolist() == []
    boxes = torch.tensor([[0.0, 0, 10, 10], [0, 0, 10, 10], [10, 0, 20, 10]])
    assert nms(boxes, torch.tensor([0.5, 0.9, 0.1]), 0.5).tolist() == [1, 2]  # touching box survives
    assert nms(boxes, torch.tensor([0.5, 0.5, 0.5]), 0.5).tolist() == [0, 2]  # ties: lower index first
    assert nms(boxes, torch.tensor([0.5, 0.9, 0.1]), -1.0).tolist() == [1]
    assert nms(boxes, torch.tensor([0.5, 0.9, 0.1]), 1.0).tolist() == [1, 0, 2]


def test_long_chain_keeps_every_other_box():
    # each box overlaps the next by IoU 0.6, the one after by 1/3, and scores fall along the chain
    n = 40
    x = torch.arange(n, dtype=torch.float32) * 2.5
    boxes = torch.stack([x, torch.zeros(n), x + 10, torch.full((n,), 10.0)], 1)
    scores = torch.linspace(1, 0.1, n)
    assert nms(boxes, scores, 0.5).tolist() == nms_loop(boxes, scores, 0.5) == list(range(0, n, 2))


@settings(max_examples=40, deadline=None)
@given(n=st.integers(0, 80), seed=st.integers(0, 100_000), k=st.integers(1, 8), classes=st.integers(1, 3),
       thr=st.sampled_from([0.0, 0.2, 0.5, 0.7, 0.9]), integer=st.booleans())
def test_grid_path_and_small_blocks_match_loop(n, seed, k, classes, thr, integer):
    boxes, scores = clustered(n, seed, k, integer=integer)
    idxs = torch.randint(0, classes, (n,), generator=torch.Generator().manual_seed(seed))
    with pytest.MonkeyPatch.context() as mp:  # force the centre grid and blocks of 8, which large inputs use
        mp.setattr(nms_module, "_DENSE_LIMIT", 0)
        mp.setattr(nms_module, "_BLOCK", 8)
        assert nms(boxes, scores, thr).tolist() == nms_loop(boxes, scores, thr)
        assert batched_nms(boxes, scores, idxs, thr).tolist() == batched_loop(boxes, scores, idxs, thr)


def test_filter_detections_threshold_nms_and_top_k():
    boxes = torch.tensor([[0.0, 0, 10, 10], [1, 1, 10, 10], [50, 50, 60, 60], [0, 0, 10, 10]])
    scores = torch.tensor([0.9, 0.8, 0.05, 0.7])
    labels = torch.tensor([0, 0, 1, 1])
    out = filter_detections(boxes, scores, labels, score_threshold=0.05, iou_threshold=0.5)
    assert out["indices"].tolist() == [0, 3, 2]  # box 1 suppressed by 0; box 3 is another class; 0.05 kept
    assert out["labels"].tolist() == [0, 1, 1]
    out = filter_detections(boxes, scores, labels, score_threshold=0.1, class_agnostic=True, max_detections=5)
    assert out["indices"].tolist() == [0]
    # per-class score matrix: a box may survive under two classes, top-k keeps the best
    multi = torch.tensor([[0.9, 0.6], [0.1, 0.2], [0.3, 0.0], [0.0, 0.0]])
    out = filter_detections(boxes, multi, score_threshold=0.15, max_detections=3)
    assert out["indices"].tolist() == [0, 0, 2] and out["labels"].tolist() == [0, 1, 0]
    assert out["scores"].tolist() == pytest.approx([0.9, 0.6, 0.3])


@settings(max_examples=30, deadline=None)
@given(n=st.integers(0, 40), classes=st.integers(1, 4), seed=st.integers(0, 100_000), per_class_boxes=st.booleans(),
       thr=st.sampled_from([0.0, 0.3, 0.6]), top=st.integers(1, 30), min_size=st.sampled_from([0.0, 8.0]))
def test_filter_detections_matches_loop(n, classes, seed, per_class_boxes, thr, top, min_size):
    g = torch.Generator().manual_seed(seed)
    boxes, _ = clustered(n, seed, 3)
    if per_class_boxes:
        boxes = boxes[:, None, :] + torch.randn(n, classes, 4, generator=g)
    scores = torch.rand(n, classes, generator=g)
    out = filter_detections(boxes, scores, score_threshold=0.3, iou_threshold=thr, max_detections=top,
                            min_size=min_size)
    # reference: every (box, class) above the threshold and large enough, NMS per class, best `top` overall
    cand = []
    for i in range(n):
        for c in range(classes):
            b = boxes[i, c] if per_class_boxes else boxes[i]
            if scores[i, c] >= 0.3 and b[2] - b[0] >= min_size and b[3] - b[1] >= min_size:
                cand.append((i, c, b))
    kept = []
    for c in range(classes):
        rows = [k for k, x in enumerate(cand) if x[1] == c]
        if rows:
            bs = torch.stack([cand[k][2] for k in rows])
            ss = torch.stack([scores[cand[k][0], c] for k in rows])
            kept += [rows[k] for k in nms_loop(bs, ss, thr)]
    kept.sort(key=lambda k: (-float(scores[cand[k][0], cand[k][1]]), k))
    kept = kept[:top]
    assert out["indices"].tolist() == [cand[k][0] for k in kept]
    assert out["labels"].tolist() == [cand[k][1] for k in kept]

"""Box conversion, area, IoU and GIoU against per-pair Python loops, and the course's IoU exercise."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from cnnkit.errors import InputError
from cnnkit.ops import (
    box_area,
    box_convert,
    box_iou,
    boxes_to_normalized,
    boxes_to_pixels,
    clip_boxes_to_image,
    generalized_box_iou,
    remove_small_boxes,
)


def random_boxes(n: int, seed: int, size: float = 100.0, dtype=torch.float64) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g, dtype=dtype) * size
    wh = torch.rand(n, 2, generator=g, dtype=dtype) * size / 2
    return torch.cat([xy, xy + wh], dim=1)


def iou_loop(a, b) -> float:
    """IoU of two xyxy boxes, as the course writes it."""
    xi1, yi1 = max(a[0], b[0]), max(a[1], b[1])
    xi2, yi2 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(xi2 - xi1, 0) * max(yi2 - yi1, 0)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union


def giou_loop(a, b) -> float:
    cx1, cy1, cx2, cy2 = min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])
    enclosing = (cx2 - cx1) * (cy2 - cy1)
    xi1, yi1 = max(a[0], b[0]), max(a[1], b[1])
    xi2, yi2 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(xi2 - xi1, 0) * max(yi2 - yi1, 0)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union - (enclosing - union) / enclosing


def test_course_iou_exercise():
    # the course's iou() test values
    assert box_iou(torch.tensor([[2.0, 1, 4, 3]]), torch.tensor([[1.0, 2, 3, 4]])).item() == pytest.approx(1 / 7)
    assert box_iou(torch.tensor([[1.0, 2, 3, 4]]), torch.tensor([[5.0, 6, 7, 8]])).item() == 0  # no overlap
    assert box_iou(torch.tensor([[1.0, 1, 2, 2]]), torch.tensor([[2.0, 1, 3, 2]])).item() == 0  # touch at a side
    assert box_iou(torch.tensor([[1.0, 1, 2, 2]]), torch.tensor([[2.0, 2, 3, 3]])).item() == 0  # touch at a corner


@settings(max_examples=30, deadline=None)
@given(n=st.integers(0, 8), m=st.integers(0, 8), seed=st.integers(0, 10_000))
def test_iou_and_giou_match_loops(n, m, seed):
    a, b = random_boxes(n, seed), random_boxes(m, seed + 1)
    iou, giou = box_iou(a, b), generalized_box_iou(a, b)
    assert iou.shape == giou.shape == (n, m)
    for i in range(n):
        for j in range(m):
            assert iou[i, j].item() == pytest.approx(iou_loop(a[i].tolist(), b[j].tolist()), abs=1e-12)
            assert giou[i, j].item() == pytest.approx(giou_loop(a[i].tolist(), b[j].tolist()), abs=1e-12)
    assert (giou <= iou + 1e-12).all() and (giou >= -1).all()


def test_iou_of_identical_boxes_is_one():
    a = random_boxes(5, 3)
    assert torch.allclose(box_iou(a, a).diagonal(), torch.ones(5, dtype=a.dtype))
    assert torch.allclose(generalized_box_iou(a, a).diagonal(), torch.ones(5, dtype=a.dtype))


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), fmts=st.sampled_from([("xyxy", "xywh"), ("xyxy", "cxcywh"), ("xywh", "cxcywh")]))
def test_box_convert_round_trip_and_loop(seed, fmts):
    boxes = random_boxes(6, seed)
    a, b = fmts
    x = box_convert(boxes, "xyxy", a)
    assert torch.allclose(box_convert(box_convert(x, a, b), b, a), x, atol=1e-10)
    for row, (x1, y1, x2, y2) in zip(box_convert(boxes, "xyxy", "cxcywh").tolist(), boxes.tolist(), strict=True):
        assert row == pytest.approx([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1])
    for row, (x1, y1, x2, y2) in zip(box_convert(boxes, "xyxy", "xywh").tolist(), boxes.tolist(), strict=True):
        assert row == pytest.approx([x1, y1, x2 - x1, y2 - y1])


def test_box_convert_rejects_unknown_format_and_bad_shape():
    with pytest.raises(InputError, match="unknown box format"):
        box_convert(torch.zeros(1, 4), "xyxy", "yolo")
    with pytest.raises(InputError, match="shape"):
        box_convert(torch.zeros(3, 5), "xyxy", "xywh")


def test_normalised_pixels_round_trip():
    boxes = torch.tensor([[10.0, 20.0, 50.0, 60.0]])
    norm = boxes_to_normalized(boxes, (200, 100))  # height 200, width 100
    assert norm[0].tolist() == pytest.approx([0.1, 0.1, 0.5, 0.3])
    assert torch.allclose(boxes_to_pixels(norm, (200, 100)), boxes)


def test_area_clip_and_small_boxes():
    boxes = torch.tensor([[-5.0, 2.0, 30.0, 8.0], [1.0, 1.0, 1.5, 9.0], [0.0, 0.0, 4.0, 4.0]])
    assert box_area(boxes).tolist() == [210.0, 4.0, 16.0]
    assert clip_boxes_to_image(boxes, (6, 20)).tolist() == [[0, 2, 20, 6], [1, 1, 1.5, 6], [0, 0, 4, 4]]
    assert remove_small_boxes(boxes, 1.0).tolist() == [0, 2]
    assert math.isclose(box_area(boxes[2:]).item(), 16)

"""YOLO: encoding, target assignment, k-means anchors, decoding, the loss, and the registered models."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from cnnkit.detect.yolo import (
    anchor_iou,
    build_targets,
    decode_boxes,
    decode_predictions,
    encode_boxes,
    kmeans_anchors,
    postprocess,
    space_to_depth,
)
from cnnkit.detect.yolo.loss import YoloLoss
from cnnkit.errors import InputError
from cnnkit.models import create_model

ANCHORS = torch.tensor([[10.0, 10.0], [20.0, 12.0], [12.0, 24.0]])


def _random_boxes(n: int, size: int = 128, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g) * (size - 40)
    wh = 4 + torch.rand(n, 2, generator=g) * 36
    return torch.cat([xy, xy + wh], 1)


def test_encode_then_decode_returns_the_boxes():
    boxes = _random_boxes(200)
    anchors = ANCHORS[torch.arange(200) % 3]
    cells, offsets = encode_boxes(boxes, anchors, 16)
    assert ((offsets[:, :2] >= 0) & (offsets[:, :2] < 1)).all()  # midpoint inside its cell
    torch.testing.assert_close(decode_boxes(cells.float(), offsets, anchors, 16), boxes, atol=1e-4, rtol=0)


def test_anchor_iou_matches_a_loop():
    rng = np.random.default_rng(0)
    wh, anchors = rng.uniform(1, 50, (30, 2)), rng.uniform(1, 50, (4, 2))
    ref = np.zeros((30, 4))
    for i in range(30):
        for j in range(4):  # two boxes centred at the origin
            inter = min(wh[i, 0], anchors[j, 0]) * min(wh[i, 1], anchors[j, 1])
            ref[i, j] = inter / (wh[i].prod() + anchors[j].prod() - inter)
    np.testing.assert_allclose(anchor_iou(wh, anchors), ref, rtol=1e-12)


def test_targets_go_to_the_midpoint_cell_and_best_shape_anchor():
    # a wide box (best anchor 1), a tall one (anchor 2), and a second tall one in the same cell (takes the next)
    boxes = torch.tensor([[40.0, 50.0, 60.0, 62.0], [100.0, 10.0, 112.0, 34.0], [101.0, 12.0, 111.0, 30.0]])
    t = build_targets([{"boxes": boxes, "labels": torch.tensor([0, 1, 2])}], ANCHORS, 16, (8, 8))
    assert t.obj.sum() == 3 and t.dropped == 0
    assert t.obj[0, 3, 3, 1]  # centre (50, 56) -> row 3, col 3; 20x12 box -> the 20x12 anchor
    assert t.obj[0, 1, 6, 2]  # centre (106, 22) -> row 1, col 6; 12x24 -> the 12x24 anchor
    assert t.obj[0, 1, 6].sum() == 2  # the third object took another anchor of that cell
    assert t.labels[0, 3, 3, 1] == 0 and t.labels[0, 1, 6, 2] == 1
    # what the responsible anchors must predict decodes back to the boxes
    idx = torch.nonzero(t.obj)
    cells = idx[:, 1:3].float()
    got = decode_boxes(cells, t.offsets[t.obj], ANCHORS[idx[:, 3]], 16)
    torch.testing.assert_close(got, t.boxes[t.obj], atol=1e-4, rtol=0)


def test_empty_image_and_degenerate_boxes_have_no_targets():
    t = build_targets([{"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long)},
                       {"boxes": torch.tensor([[5.0, 5.0, 5.0, 9.0]]), "labels": torch.tensor([0])}],
                      ANCHORS, 16, (4, 4))
    assert t.obj.sum() == 0


def _perfect_raw(targets, anchors, stride, grid, num_classes) -> torch.Tensor:
    """The raw output a perfect network would give: sure objectness and class where an object is, else none."""
    t = build_targets(targets, anchors, stride, grid)
    n, (sh, sw), b = len(targets), grid, len(anchors)
    raw = torch.zeros(n, sh, sw, b, 5 + num_classes)
    raw[..., 0] = -20.0
    raw[..., 0][t.obj] = 20.0
    off = t.offsets[t.obj]
    raw[..., 1:3][t.obj] = torch.logit(off[:, :2].clamp(1e-6, 1 - 1e-6))
    raw[..., 3:5][t.obj] = off[:, 2:]
    cls = torch.full((int(t.obj.sum()), num_classes), -20.0)
    cls[torch.arange(len(cls)), t.labels[t.obj]] = 20.0
    raw[..., 5:][t.obj] = cls
    return raw


def test_perfect_raw_output_decodes_to_the_labels():
    boxes = torch.tensor([[10.0, 12.0, 40.0, 30.0], [70.0, 60.0, 90.0, 100.0]])
    labels = torch.tensor([2, 0])
    targets = [{"boxes": boxes, "labels": labels}]
    raw = _perfect_raw(targets, ANCHORS, 16, (8, 8), 3)
    b, s = decode_predictions(raw, ANCHORS, 16)
    assert b.shape == (1, 8 * 8 * 3, 4) and s.shape == (1, 8 * 8 * 3, 3)
    det = postprocess(b, s, score_threshold=0.5, image_size=(128, 128))[0]
    order = det["labels"].argsort(descending=True)
    torch.testing.assert_close(det["boxes"][order], boxes, atol=1e-3, rtol=0)
    assert det["labels"][order].tolist() == [2, 0]


def test_perfect_predictions_score_map_one():
    pytest.importorskip("cnnkit.metrics")
    from cnnkit.detect.task import detection_map

    preds, gts = [], []
    for i in range(5):
        boxes = _random_boxes(3, seed=i)
        labels = torch.tensor([0, 1, i % 2])
        gts.append({"boxes": boxes, "labels": labels})
        raw = _perfect_raw([gts[-1]], ANCHORS, 16, (8, 8), 2)
        preds.append(postprocess(*decode_predictions(raw, ANCHORS, 16), score_threshold=0.5)[0])
    m = detection_map(preds, gts, ["a", "b"])
    assert m["map"] == pytest.approx(1.0) and m["map50"] == pytest.approx(1.0)


def test_loss_is_small_for_perfect_output_and_large_for_zero_output():
    targets = [{"boxes": _random_boxes(4, seed=3), "labels": torch.tensor([0, 1, 1, 0])}]
    perfect = _perfect_raw(targets, ANCHORS, 16, (8, 8), 2)
    loss_fn = YoloLoss(objectness="bce", rescore=False)
    good, parts = loss_fn(perfect, targets, ANCHORS, 16)
    bad, _ = loss_fn(torch.zeros_like(perfect), targets, ANCHORS, 16)
    assert float(good) < 1e-3 and float(bad) > 10
    assert set(parts) == {"box", "obj", "noobj", "cls"}


@settings(max_examples=20, deadline=None)
@given(st.integers(1, 4), st.integers(0, 6), st.sampled_from(["mse", "bce"]))
def test_loss_is_finite_with_gradients(n_images, n_boxes, objectness):
    torch.manual_seed(n_images * 10 + n_boxes)
    raw = torch.randn(n_images, 4, 4, 3, 7, requires_grad=True)
    targets = [{"boxes": _random_boxes(n_boxes, size=64, seed=i), "labels": torch.randint(0, 2, (n_boxes,))}
               for i in range(n_images)]
    loss, _ = YoloLoss(objectness=objectness)(raw, targets, ANCHORS, 16)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(raw.grad).all()


def test_kmeans_recovers_clusters_and_reports_mean_iou():
    rng = np.random.default_rng(0)
    centres = np.array([[10, 10], [30, 15], [15, 40]], float)
    wh = np.concatenate([c * rng.uniform(0.95, 1.05, (100, 2)) for c in centres])
    anchors, mean_iou = kmeans_anchors(wh, 3)
    got = anchors[np.argsort(anchors[:, 0])]
    np.testing.assert_allclose(got, centres[np.argsort(centres[:, 0])], rtol=0.05)
    brute = anchor_iou(wh, anchors).max(1).mean()
    assert mean_iou == pytest.approx(brute) and mean_iou > 0.9


def test_kmeans_bad_input_is_one_clear_error():
    with pytest.raises(InputError, match="at least k=5"):
        kmeans_anchors(np.ones((3, 2)), 5)
    with pytest.raises(InputError, match="positive"):
        kmeans_anchors(np.array([[1.0, 0.0], [2, 2]]), 1)


def test_space_to_depth_matches_a_loop():
    x = torch.randn(2, 3, 4, 6)
    y = space_to_depth(x, 2)
    assert y.shape == (2, 12, 2, 3)
    for c in range(3):
        for i in range(2):
            for j in range(2):
                torch.testing.assert_close(y[:, c * 4 + i * 2 + j], x[:, c, i::2, j::2])


@pytest.mark.parametrize("name", ["yolo_tiny", "yolo_darknet"])
def test_yolo_models_output_the_grid(name):
    model = create_model(name, num_classes=3, anchors=ANCHORS.tolist()).eval()
    assert model.task == "detection"
    x = torch.rand(2, 3, 128, 96)
    raw = model(x)
    s = model.stride
    assert raw.shape == (2, 128 // s, 96 // s, 3, 8)
    dets = model.detect(x, score_threshold=0.0, max_detections=7)
    assert len(dets) == 2 and all(len(d["boxes"]) <= 7 for d in dets)


def test_size_not_multiple_of_stride_is_one_clear_error():
    model = create_model("yolo_tiny", num_classes=2).eval()
    with pytest.raises(InputError, match="multiple of the stride 16"):
        model(torch.rand(1, 3, 100, 128))


def test_tiny_yolo_loss_falls_in_a_few_steps():
    from cnnkit.data.scene_dataset import load_scenes
    from cnnkit.detect.task import DetectionTask

    data = load_scenes(train=16, val=0, test=0, size=64, progress=False, masks=False)["train"]
    torch.manual_seed(0)
    model = create_model("yolo_tiny", num_classes=data.num_classes, num_anchors=3, image_size=64)
    task = DetectionTask.for_model(model)
    x, targets = task.collate([data[i] for i in range(16)])
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(12):
        loss, _ = task.loss(model(x), targets)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.5 * losses[0]


def test_onnx_export_of_the_decoded_detector_matches_and_nms_stays_outside(tmp_path):
    pytest.importorskip("onnxruntime")
    from cnnkit.models.export import check_export, example_input, export_model

    torch.manual_seed(0)
    model = create_model("yolo_tiny", num_classes=3, num_anchors=3, image_size=64).eval()
    dec = model.export_module()
    x = example_input(dec, (3, 64, 64), batch=2)
    out = dec(x)
    assert out.shape == (2, 4 * 4 * 3, 4 + 3)
    path = export_model(dec, tmp_path / "yolo.onnx", "onnx", input_shape=(3, 64, 64))
    assert check_export(dec, path, "onnx", x) < 1e-4
    # thresholds and NMS on the exported numbers give what model.detect gives
    got = postprocess(out[..., :4], out[..., 4:], score_threshold=0.05, image_size=(64, 64))
    want = model.detect(x, score_threshold=0.05)
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g["boxes"], w["boxes"])
        assert g["labels"].tolist() == w["labels"].tolist()


def test_prepare_for_inference_keeps_the_detector_outputs():
    from cnnkit.models import prepare_for_inference

    torch.manual_seed(0)
    model = create_model("yolo_tiny", num_classes=2, num_anchors=3, image_size=64).eval()
    x = torch.rand(2, 3, 64, 64)
    fast = prepare_for_inference(model, backend="jit")
    torch.testing.assert_close(fast(x), model(x), rtol=1e-4, atol=1e-4)

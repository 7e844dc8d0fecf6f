"""VOC AP50 (all-point) against a hand computation."""

from __future__ import annotations

import numpy as np
import pytest

from cnnkit.metrics import evaluate_voc, voc_ap


def test_voc_ap_by_hand():
    # precision 1, 0.5, 2/3 at recall 1/3, 1/3, 2/3: envelope 1 up to 1/3, 2/3 up to 2/3
    assert voc_ap(np.array([1 / 3, 1 / 3, 2 / 3]), np.array([1.0, 0.5, 2 / 3])) == pytest.approx(1 / 3 + 2 / 9)
    assert voc_ap(np.array([]), np.array([])) == 0


def test_evaluate_voc_by_hand():
    targets = [
        {"boxes": np.array([[0, 0, 10, 10], [20, 20, 30, 30], [50, 50, 60, 60]]), "labels": np.array([1, 1, 1]),
         "difficult": np.array([False, False, True])},
        {"boxes": np.array([[0, 0, 10, 10]]), "labels": np.array([1])},
    ]
    preds = [
        {"boxes": np.array([[0, 0, 10, 10], [0, 0, 10, 9], [20, 20, 30, 30], [50, 50, 60, 60], [80, 80, 90, 90]]),
         "scores": np.array([0.9, 0.8, 0.6, 0.95, 0.7]), "labels": np.array([1, 1, 1, 1, 1])},
        {"boxes": np.array([[1, 1, 11, 11]]), "scores": np.array([0.5]), "labels": np.array([1])},
    ]
    out = evaluate_voc(preds, targets)
    # score order: 0.95 difficult (ignored), 0.9 TP, 0.8 duplicate FP, 0.7 FP, 0.6 TP, 0.5 TP (IoU 81/119 > 0.5)
    # 3 positives: recall 1/3, 1/3, 1/3, 2/3, 1; precision 1, 1/2, 1/3, 1/2, 3/5
    expected = 1 / 3 * 1 + 1 / 3 * 0.6 + 1 / 3 * 0.6
    assert out["ap_per_class"][1] == pytest.approx(expected)
    assert out["map50"] == pytest.approx(expected)
    rec, prec = out["pr_curves"][1]
    assert rec.tolist() == pytest.approx([1 / 3, 1 / 3, 1 / 3, 2 / 3, 1])
    assert prec.tolist() == pytest.approx([1, 1 / 2, 1 / 3, 1 / 2, 3 / 5])


def test_perfect_voc_is_one_and_missing_class_is_minus_one():
    boxes = np.array([[0, 0, 10, 10], [20, 0, 30, 10]])
    out = evaluate_voc([{"boxes": boxes, "scores": np.array([0.9, 0.8]), "labels": np.array([0, 1])}],
                       [{"boxes": boxes, "labels": np.array([0, 1])}], class_ids=[0, 1, 2])
    assert out["ap_per_class"] == {0: 1.0, 1: 1.0, 2: -1.0} and out["map50"] == 1.0


def test_pr_curve_figures(tmp_path):
    from cocodata import random_coco

    from cnnkit.io import save_figure
    from cnnkit.metrics import evaluate_coco
    from cnnkit.metrics.plots import plot_pr_curves

    gt, results = random_coco(2, n_images=20)
    coco = evaluate_coco(gt, results)
    fig = plot_pr_curves(coco, iou_threshold=0.75)
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert len(labels) == len(gt["categories"]) - 1  # the class without ground truth has no curve
    assert all(label.split(" (AP ")[0] in {c["name"] for c in gt["categories"]} for label in labels)
    save_figure(tmp_path / "pr.png", fig)
    assert (tmp_path / "pr.png").stat().st_size > 1000
    boxes = np.array([[0, 0, 10, 10]])
    voc = evaluate_voc([{"boxes": boxes, "scores": np.array([0.9]), "labels": np.array([3])}],
                       [{"boxes": boxes, "labels": np.array([3])}])
    fig = plot_pr_curves(voc, {3: "three"})
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["three (AP 1.000)"]

"""COCO mAP against pycocotools' COCOeval on random data with every awkward case, and known values."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from cocodata import pycocotools_eval, random_coco
from hypothesis import given, settings
from hypothesis import strategies as st

from cnnkit.errors import InputError
from cnnkit.metrics import evaluate_coco, evaluate_detections


def assert_same_as_pycocotools(gt, results):
    ours = evaluate_coco(copy.deepcopy(gt), copy.deepcopy(results))
    ref, printed = pycocotools_eval(gt, results)
    np.testing.assert_allclose(ours.stats, ref.stats, atol=1e-6, rtol=0)
    np.testing.assert_allclose(ours.precision, ref.eval["precision"], atol=1e-6, rtol=0)
    np.testing.assert_allclose(ours.recall, ref.eval["recall"], atol=1e-6, rtol=0)
    return ours, printed


@pytest.mark.parametrize("seed,ties", [(0, False), (1, True), (2, False)])
def test_equals_pycocotools_on_hundreds_of_images(seed, ties):
    gt, results = random_coco(seed, n_images=250, tie_scores=ties)
    assert any(a["iscrowd"] for a in gt["annotations"])
    ours, printed = assert_same_as_pycocotools(gt, results)
    assert ours.summary_lines() == printed.strip().splitlines()[-12:]  # the same 12 lines, word for word
    assert (ours.precision[:, :, -1] == -1).all()  # the category without ground truth


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 1_000_000), n_images=st.integers(1, 6), n_cats=st.integers(1, 4),
       max_gt=st.integers(0, 12), max_dt=st.integers(1, 120), ties=st.booleans())
def test_equals_pycocotools_small_random_cases(seed, n_images, n_cats, max_gt, max_dt, ties):
    gt, results = random_coco(seed, n_images=n_images, n_cats=n_cats + 1, max_gt=max_gt, max_dt=max_dt,
                              tie_scores=ties)
    if not results:  # pycocotools cannot load an empty results list
        return
    assert_same_as_pycocotools(gt, results)


def perfect_case():
    gt, _ = random_coco(5, n_images=40)
    gt["annotations"] = [dict(a, iscrowd=0, area=a["bbox"][2] * a["bbox"][3]) for a in gt["annotations"]]
    results = [{"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"], "score": 0.9}
               for a in gt["annotations"]]
    return gt, results


def test_perfect_predictions_give_one():
    gt, results = perfect_case()
    s = evaluate_coco(gt, results).summary()
    for name in ("map", "map50", "map75", "map_small", "map_medium", "map_large", "mar_100", "mar_small"):
        assert s[name] == pytest.approx(1.0), name
    assert s["mar_1"] < 1  # images have several boxes of a class: one detection cannot find them all


def test_in_memory_detections_equal_coco_dicts():
    gt, results = random_coco(7, n_images=60)
    ids = [im["id"] for im in gt["images"]]
    targets, preds = [], []
    for i in ids:
        anns = [a for a in gt["annotations"] if a["image_id"] == i]
        dets = [r for r in results if r["image_id"] == i]

        def xyxy(items):
            b = np.array([it["bbox"] for it in items], dtype=np.float64).reshape(-1, 4)
            return np.concatenate([b[:, :2], b[:, :2] + b[:, 2:]], 1)
        targets.append({"boxes": xyxy(anns), "labels": np.array([a["category_id"] for a in anns], dtype=np.int64),
                        "iscrowd": np.array([a["iscrowd"] for a in anns]), "area": np.array([a["area"] for a in anns])})
        preds.append({"boxes": xyxy(dets), "scores": np.array([d["score"] for d in dets]),
                      "labels": np.array([d["category_id"] for d in dets], dtype=np.int64)})
    cat_ids = [c["id"] for c in gt["categories"]]
    ours = evaluate_detections(preds, targets, class_ids=cat_ids)
    ref = evaluate_coco(gt, results)
    # xyxy -> xywh round trip moves the last bit of a few coordinates
    np.testing.assert_allclose(ours.stats, ref.stats, atol=1e-6)
    assert set(ours.summary()) == {"map", "map50", "map75", "map_small", "map_medium", "map_large", "mar_1",
                                   "mar_10", "mar_100", "mar_small", "mar_medium", "mar_large"}
    ap = ours.per_class_ap()
    assert ap[cat_ids[-1]] == -1 and all(0 <= ap[c] <= 1 for c in cat_ids[:-1])
    curves = ours.pr_curves(0.5)
    assert curves[cat_ids[0]].shape == (101,) and (np.diff(curves[cat_ids[0]]) <= 0).all()  # monotone


def test_no_detections_and_unknown_ids():
    gt, results = random_coco(3, n_images=10)
    empty = evaluate_coco(gt, [])
    assert empty.stats[0] == 0 and empty.summary()["mar_100"] == 0
    bad_image = results[:3] + [dict(results[0], image_id=-5)]
    with pytest.raises(InputError, match="image id -5"):
        evaluate_coco(gt, bad_image)
    with pytest.raises(InputError, match="category id 12345"):
        evaluate_coco(gt, [dict(results[0], category_id=12345)])
    with pytest.raises(InputError, match="malformed"):
        evaluate_coco(gt, [{"image_id": results[0]["image_id"], "bbox": [1, 2, 3, 4], "score": 1}])
    with pytest.raises(InputError, match="images"):
        evaluate_coco({"annotations": []}, results)


@pytest.mark.parametrize("with_bbox", [False, True])
def test_segm_equals_pycocotools(with_bbox):
    from cocodata import random_coco_segm

    gt, results = random_coco_segm(4, n_images=40, with_bbox=with_bbox)
    assert any(a["iscrowd"] for a in gt["annotations"])
    ours = evaluate_coco(copy.deepcopy(gt), copy.deepcopy(results), iou_type="segm")
    ref, _ = pycocotools_eval(gt, results, "segm")
    np.testing.assert_allclose(ours.stats, ref.stats, atol=1e-6, rtol=0)
    np.testing.assert_allclose(ours.precision, ref.eval["precision"], atol=1e-6, rtol=0)


@pytest.mark.parametrize("swap", [False, True])
def test_equal_ious_go_to_the_last_ground_truth_as_in_pycocotools(swap):
    # detection D has IoU 0.5 with both halves A and B of its box; pycocotools' loop keeps the later one, which
    # decides whether the second detection E (on A) finds A still free
    a, b = [0.0, 0.0, 10.0, 5.0], [0.0, 5.0, 10.0, 5.0]
    boxes = [b, a] if swap else [a, b]
    gt = {"images": [{"id": 1}], "categories": [{"id": 1}],
          "annotations": [{"id": i + 1, "image_id": 1, "category_id": 1, "bbox": bb, "area": 50.0, "iscrowd": 0}
                          for i, bb in enumerate(boxes)]}
    results = [{"image_id": 1, "category_id": 1, "bbox": [0.0, 0.0, 10.0, 10.0], "score": 0.9},
               {"image_id": 1, "category_id": 1, "bbox": [0.0, 0.0, 10.0, 6.0], "score": 0.8}]
    ours, _ = assert_same_as_pycocotools(gt, results)
    assert ours.summary()["map50"] == pytest.approx(1.0 if not swap else 0.5, abs=0.01)


def test_boxes_of_the_wrong_length_are_refused():
    gt, results = random_coco(9, n_images=5)
    with pytest.raises(InputError, match=r"\[x, y, width, height\]"):
        evaluate_coco(gt, [dict(r, bbox=r["bbox"] + [1.0]) for r in results[:4]])  # 4 x 5 numbers


def test_in_memory_accepts_tensors_that_require_grad():
    import torch

    boxes = np.array([[0.0, 0.0, 10.0, 10.0], [20.0, 20.0, 40.0, 45.0]])
    targets = [{"boxes": torch.tensor(boxes), "labels": torch.tensor([1, 2])}]
    preds = [{"boxes": torch.tensor(boxes + 1, requires_grad=True), "scores": torch.tensor([0.9, 0.8]),
              "labels": torch.tensor([1, 2])}]
    ref = evaluate_detections([{k: v.detach().numpy() for k, v in preds[0].items()}],
                              [{k: v.numpy() for k, v in targets[0].items()}])
    assert evaluate_detections(preds, targets).summary() == ref.summary()
    assert ref.summary()["map50"] == pytest.approx(1.0)

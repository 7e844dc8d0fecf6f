"""The detection room's tasks: prediction on any image size, localisation and landmarks, data from files."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from cnnkit.augment import Sample
from cnnkit.detect.landmarks import HorizontalFlipLandmarks, encode_landmarks, mirror_landmarks, swap_pairs
from cnnkit.detect.localization import decode_localization, encode_localization, localization_loss
from cnnkit.detect.task import DetectionTask, LandmarkTask, LocalizationTask
from cnnkit.errors import CnnkitError
from cnnkit.models import create_model
from cnnkit.tasks import get_task, task_for_model


def test_tasks_are_found_from_the_models():
    assert isinstance(task_for_model(create_model("yolo_tiny", num_classes=2)), DetectionTask)
    assert isinstance(task_for_model(create_model("loc_tiny", num_classes=2)), LocalizationTask)
    assert isinstance(task_for_model(create_model("landmarks_tiny")), LandmarkTask)
    assert get_task("detection").best_metric == "map"


@pytest.mark.parametrize("image_size", [None, 0])
def test_predict_any_image_size_gives_boxes_in_its_pixels(image_size):
    torch.manual_seed(0)
    model = create_model("yolo_tiny", num_classes=2, num_anchors=3).eval()
    task = task_for_model(model)
    image = (np.random.default_rng(0).random((75, 130, 3)) * 255).astype(np.uint8)  # not a multiple of 16
    meta = {"input_size": [3, 128, 128], "classes": ["cat", "dog"]}
    result = task.predict(model, image, meta, score_threshold=0.0, max_detections=20, image_size=image_size)
    dets = result["detections"]
    assert 0 < len(dets) <= 20
    boxes = np.array([d["box"] for d in dets])
    assert (boxes[:, [0, 2]] >= 0).all() and (boxes[:, [0, 2]] <= 130).all()
    assert (boxes[:, [1, 3]] >= 0).all() and (boxes[:, [1, 3]] <= 75).all()
    assert {d["class"] for d in dets} <= {"cat", "dog"}
    picture = task.render(image, result, meta)
    assert picture.dtype == np.uint8 and picture.ndim == 3
    assert task.csv_rows(result)[0][0] in ("cat", "dog")


def test_localization_target_round_trip_and_perfect_loss():
    two = torch.tensor([[10.0, 20.0, 50.0, 40.0], [0.0, 0.0, 5.0, 5.0]])
    targets = [{"boxes": two, "labels": torch.tensor([2, 1])},
               {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long)}]
    y = encode_localization(targets, (64, 100), 3)
    # the largest object, midpoint and size as fractions of the image: (p_c, b_x, b_y, b_h, b_w, c)
    torch.testing.assert_close(y[0], torch.tensor([1.0, 0.3, 30 / 64, 20 / 64, 0.4, 0, 0, 1]))
    assert y[1].abs().sum() == 0
    _, boxes, labels, _ = decode_localization(y, (64, 100))
    torch.testing.assert_close(boxes[0], targets[0]["boxes"][0])
    assert labels[0] == 2
    perfect = y.clone()
    perfect[:, 0] = torch.where(y[:, 0] > 0, 30.0, -30.0)
    perfect[:, 5:] = (y[:, 5:] * 2 - 1) * 30
    loss, parts = localization_loss(perfect, y)
    assert float(loss) < 1e-6 and set(parts) == {"pc", "box", "cls"}


def test_localization_model_trains_a_few_steps():
    from cnnkit.data.scene_dataset import load_scenes

    data = load_scenes(train=16, val=0, test=0, size=64, view="localisation", progress=False, masks=False)["train"]
    torch.manual_seed(0)
    model = create_model("loc_tiny", num_classes=data.num_classes)
    task = task_for_model(model)
    x, targets = task.collate([data[i] for i in range(16)])
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    losses = []
    for _ in range(10):
        loss, _ = task.loss(model(x), targets)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.6 * losses[0]
    meter = task.meter(model, data)
    model.eval()
    with torch.no_grad():
        meter.update(model(x), targets)
    m = meter.compute()
    assert 0 <= m["mean_iou"] <= 1 and m["n"] == 16


def test_mirror_swaps_left_and_right_landmarks():
    pts = torch.tensor([[[10.0, 5.0], [30.0, 5.0], [30.0, 25.0], [10.0, 25.0]]])  # tl, tr, br, bl
    m = mirror_landmarks(pts, 40, ((0, 1), (2, 3)))
    # the mirrored top-left corner (x = 30) is the new top-right one; the new top-left is the old top-right
    torch.testing.assert_close(m, torch.tensor([[[10.0, 5.0], [30.0, 5.0], [30.0, 25.0], [10.0, 25.0]]]))
    odd = torch.tensor([[[1.0, 2.0], [5.0, 2.0], [5.0, 9.0], [1.0, 9.0]]])
    torch.testing.assert_close(mirror_landmarks(mirror_landmarks(odd, 8, ((0, 1), (2, 3))), 8, ((0, 1), (2, 3))), odd)
    torch.testing.assert_close(swap_pairs(odd, ((0, 1),))[0, 0], odd[0, 1])


def test_flip_transform_keeps_landmark_identities_on_a_scene():
    from cnnkit.data.scene_dataset import load_scenes

    ds = load_scenes(train=1, val=0, test=0, size=64, view="landmarks", progress=False, masks=False)["train"]
    image, t = ds[0]
    flip = HorizontalFlipLandmarks(ds.flip_pairs, p=1.0)
    out = flip(Sample(image, boxes=t["boxes"], landmarks=t["keypoints"], labels=t["labels"]))
    tl, tr = out.landmarks[0, 0], out.landmarks[0, 1]
    assert tl[0] <= tr[0] + 1e-4  # "top-left" is still left of "top-right" after the mirror
    torch.testing.assert_close(out.image, image.flip(-1))


def test_landmark_encoding_skips_images_without_objects():
    targets = [{"boxes": torch.tensor([[0.0, 0, 10, 10]]), "keypoints": torch.tensor([[[2.0, 4.0], [8.0, 4.0]]])},
               {"boxes": torch.zeros(0, 4), "keypoints": torch.zeros(0, 2, 2)}]
    y = encode_landmarks(targets, (20, 40))
    torch.testing.assert_close(y[0], torch.tensor([[0.05, 0.2], [0.2, 0.2]]))
    assert torch.isnan(y[1]).all()


def _yolo_folder(root, *, labels: dict[str, str], names=("a", "b"), train="images/train"):
    (root / "images" / "train").mkdir(parents=True)
    (root / "labels" / "train").mkdir(parents=True)
    for stem, text in labels.items():
        Image.fromarray(np.full((64, 80, 3), 128, np.uint8)).save(root / "images" / "train" / f"{stem}.png")
        if text is not None:
            (root / "labels" / "train" / f"{stem}.txt").write_text(text)
    (root / "dataset.yaml").write_text(f"path: {root}\ntrain: {train}\nval: {train}\nnames: {list(names)}\n")
    return root / "dataset.yaml"


def test_yolo_folder_trains_with_empty_label_files_and_skips_bad_rows(tmp_path):
    yaml = _yolo_folder(tmp_path, labels={
        "ok": "0 0.5 0.5 0.25 0.25\n",
        "empty": "",                       # an image with no objects is valid
        "outside": "1 1.6 0.5 0.2 0.2\n",  # a box outside the image
        "badclass": "7 0.5 0.5 0.2 0.2\n",  # a class id beyond the names
    })
    task = DetectionTask()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        parts = task.load_data(str(yaml), image_size=64, augment="none")
    messages = " ".join(str(w.message) for w in caught)
    assert "class" in messages  # the unknown class id is named, not silently dropped
    everything = [parts[s][i] for s in parts for i in range(len(parts[s]))]
    assert everything and all(im.shape == (3, 64, 64) for im, _ in everything)
    n_boxes = sum(len(t["boxes"]) for _, t in everything)
    assert n_boxes >= 1
    for _, t in everything:  # letterboxed into the 64x64 input, never outside it
        b = t["boxes"]
        assert ((b >= 0) & (b <= 64)).all()
    with pytest.raises(CnnkitError):
        task.load_data(str(yaml), image_size=64, augment="none", strict=True)


def test_yaml_pointing_to_a_missing_folder_is_one_clear_error(tmp_path):
    yaml = _yolo_folder(tmp_path, labels={"ok": "0 0.5 0.5 0.25 0.25\n"}, train="images/nowhere")
    with pytest.raises(CnnkitError, match="nowhere"):
        DetectionTask().load_data(str(yaml), image_size=64)


def test_fit_trains_a_detector_and_reports_map(tmp_path):
    from cnnkit.data.scene_dataset import load_scenes
    from cnnkit.train import TrainConfig, fit

    parts = load_scenes(train=24, val=8, test=0, size=64, progress=False, masks=False)
    task = DetectionTask()
    torch.manual_seed(0)
    kw = task.model_kwargs(parts["train"], num_anchors=3, verbose=False)
    assert len(kw["anchors"]) == 3 and kw["num_classes"] == 5
    model = create_model("yolo_tiny", image_size=64, **kw)
    result = fit(model, parts["train"], parts["val"], TrainConfig(epochs=2, batch_size=8, lr=2e-3), out_dir=tmp_path,
                 progress=False)
    row = result.history[-1]
    assert row["train_loss"] < result.history[0]["train_loss"] * 1.5
    assert 0.0 <= row["val_map"] <= 1.0 and "val_map50" in row
    assert (tmp_path / "best.safetensors").is_file()
    from cnnkit.checkpoint import load_model_file

    again, meta = load_model_file(tmp_path / "best.safetensors")
    assert meta["task"] == "detection"
    torch.testing.assert_close(again.anchors, model.anchors)


def test_soft_argmax_matches_a_loop_and_peaks():
    from cnnkit.detect.landmarks import soft_argmax

    maps = torch.randn(2, 3, 5, 7)
    got = soft_argmax(maps)
    for n in range(2):
        for k in range(3):
            p = torch.softmax(maps[n, k].flatten(), 0).view(5, 7)
            x = sum(float(p[i, j]) * (j + 0.5) / 7 for i in range(5) for j in range(7))
            y = sum(float(p[i, j]) * (i + 0.5) / 5 for i in range(5) for j in range(7))
            torch.testing.assert_close(got[n, k], torch.tensor([x, y]), rtol=1e-5, atol=1e-6)
    sharp = torch.full((1, 1, 8, 8), -50.0)
    sharp[0, 0, 2, 5] = 50.0  # a single peak at row 2, column 5: its cell's centre
    torch.testing.assert_close(soft_argmax(sharp)[0, 0], torch.tensor([5.5 / 8, 2.5 / 8]))

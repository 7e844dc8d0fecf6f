"""The segmentation task: data (scenes, label-PNG folders, COCO masks), bad input in one line, and the CLI
train -> evaluate -> predict round trip."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from cnnkit.errors import CnnkitError
from cnnkit.tasks import get_task, task_for_model

CLASSES = ["background", "red", "blue"]
COLOURS = {(0, 0, 0): 0, (255, 0, 0): 1, (0, 0, 255): 2}


def _scene(rng, size=32):
    """An image with one red or blue square on grey noise, and its class map."""
    img = (rng.random((size, size, 3)) * 60 + 100).astype(np.uint8)
    lab = np.zeros((size, size), np.uint8)
    k = int(rng.integers(1, 3))
    y, x = rng.integers(0, size - 12, 2)
    s = int(rng.integers(6, 12))
    img[y : y + s, x : x + s] = (220, 30, 30) if k == 1 else (30, 30, 220)
    lab[y : y + s, x : x + s] = k
    return img, lab


def make_label_folder(root, n=12, *, rgb=False, size=32):
    """root/images/*.png + root/labels/*.png with classes.txt (index masks) or class_dict.csv (RGB masks)."""
    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    for i in range(n):
        img, lab = _scene(rng, size)
        Image.fromarray(img).save(root / "images" / f"{i:03d}.png")
        if rgb:
            pal = np.array(list(COLOURS), np.uint8)
            Image.fromarray(pal[lab]).save(root / "labels" / f"{i:03d}.png")
        else:
            Image.fromarray(lab, mode="L").save(root / "labels" / f"{i:03d}.png")
    if rgb:
        (root / "class_dict.csv").write_text("name,r,g,b\n" + "".join(
            f"{n},{c[0]},{c[1]},{c[2]}\n" for n, c in zip(CLASSES, COLOURS, strict=True)))
    else:
        (root / "classes.txt").write_text("\n".join(CLASSES) + "\n")
    return root


def test_scenes_semantic_view():
    task = get_task("segmentation")
    parts = task.load_data("scenes", image_size=64, scene_counts={"train": 20, "val": 5, "test": 5})
    train = parts["train"]
    assert train.classes == ["background", "circle", "square", "triangle", "star", "cross"]
    x, y = train[0]
    assert x.shape == (3, 64, 64) and x.dtype == torch.float32 and y.shape == (64, 64) and y.dtype == torch.int64
    assert abs(float(x.mean())) < 1.0  # normalised with the training mean/std
    assert 0 < int(y.max()) < 6 and int(y.min()) == 0
    assert len(parts["val"]) == 5 and parts["val"].mean == train.mean


def test_task_of_the_models():
    from cnnkit.models import create_model

    task = task_for_model(create_model("unet_small", base_width=4))
    assert task.name == "segmentation" and task.best_metric == "miou"
    logits = torch.randn(2, 6, 16, 16, requires_grad=True)
    target = torch.randint(0, 6, (2, 16, 16))
    loss, parts = task.loss(logits, target)
    loss.backward()
    assert set(parts) == {"ce", "dice"}
    stats = task.train_stats(logits, target)
    assert 0 <= stats["pixel_acc"] <= 2


@pytest.mark.parametrize("rgb", [False, True])
def test_label_png_folder(tmp_path, rgb):
    root = make_label_folder(tmp_path / "d", rgb=rgb)
    parts = get_task("segmentation").load_data(str(root), image_size=32, split_seed=0)
    assert parts["train"].classes == CLASSES
    xs = [parts[s][i] for s in parts for i in range(len(parts[s]))]
    assert sum(len(parts[s]) for s in parts) == 12
    assert all(int(y.max()) in (1, 2) for _, y in xs)


def _cli_error(run_cli, *args):
    code, out, err = run_cli(*args)
    assert code == 2, (code, out, err)
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, err
    return lines[0]


def test_bad_masks_one_line(tmp_path, run_cli):
    common = ["--model", "unet_small", "--epochs", "1", "--image-size", "32", "--no-progress"]
    # an RGB mask with a colour outside the palette
    root = make_label_folder(tmp_path / "colour", rgb=True)
    m = np.array(Image.open(root / "labels" / "003.png"))
    m[5, 7] = (0, 255, 0)
    Image.fromarray(m).save(root / "labels" / "003.png")
    line = _cli_error(run_cli, "train", "--data", root, "--out", tmp_path / "r1", *common)
    assert "(0, 255, 0)" in line and "palette" in line and "003.png" in line
    # a class id above the classes
    root = make_label_folder(tmp_path / "index")
    m = np.array(Image.open(root / "labels" / "002.png"))
    m[1, 2] = 7
    Image.fromarray(m, mode="L").save(root / "labels" / "002.png")
    line = _cli_error(run_cli, "train", "--data", root, "--out", tmp_path / "r2", *common)
    assert "class id 7" in line
    # a mask of the wrong size, and a missing mask: refused with --strict
    root = make_label_folder(tmp_path / "size")
    Image.fromarray(np.zeros((20, 32), np.uint8), mode="L").save(root / "labels" / "001.png")
    line = _cli_error(run_cli, "train", "--data", root, "--out", tmp_path / "r3", "--strict", *common)
    assert "001.png" in line and "size" in line
    root = make_label_folder(tmp_path / "missing")
    (root / "labels" / "004.png").unlink()
    line = _cli_error(run_cli, "train", "--data", root, "--out", tmp_path / "r4", "--strict", *common)
    assert "004" in line and "label PNG" in line


def test_size_mismatch_skipped_with_a_warning_when_not_strict(tmp_path):
    root = make_label_folder(tmp_path / "size")
    Image.fromarray(np.zeros((20, 32), np.uint8), mode="L").save(root / "labels" / "001.png")
    with pytest.warns(Warning, match="001.png"):
        parts = get_task("segmentation").load_data(str(root), image_size=32)
    assert sum(len(p) for p in parts.values()) == 11


def test_coco_masks(tmp_path):
    """COCO polygons become the semantic map: background 0, category k -> k + 1."""
    (tmp_path / "images").mkdir()
    rng = np.random.default_rng(1)
    images, anns = [], []
    for i in range(6):
        Image.fromarray((rng.random((40, 48, 3)) * 255).astype(np.uint8)).save(tmp_path / "images" / f"{i}.png")
        images.append({"id": i + 1, "file_name": f"{i}.png", "width": 48, "height": 40})
        anns.append({"id": i + 1, "image_id": i + 1, "category_id": 1 + i % 2, "iscrowd": 0, "area": 100.0,
                     "bbox": [10, 10, 10, 10], "segmentation": [[10, 10, 20, 10, 20, 20, 10, 20]]})
    coco = {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}]}
    (tmp_path / "instances_train.json").write_text(json.dumps(coco))
    parts = get_task("segmentation").load_data(str(tmp_path / "instances_train.json"), image_size=48)
    ds = next(iter(parts.values()))
    assert ds.classes == ["background", "cat", "dog"]
    _, y = ds[0]
    assert y.shape == (48, 48)
    assert set(torch.unique(y).tolist()) <= {0, 1, 2, 255} and (y == 255).any()  # letterbox padding ignored
    assert int(((y == 1) | (y == 2)).sum()) >= 80


def test_cli_train_evaluate_predict(tmp_path, run_cli):
    root = make_label_folder(tmp_path / "d", n=16)
    run = tmp_path / "run"
    code, out, err = run_cli("train", "--model", "unet_small", "--data", root, "--out", run, "--epochs", "2",
                             "--image-size", "32", "--batch-size", "8", "--lr", "0.01", "--no-progress")
    assert code == 0, err
    assert "miou" in out
    metrics = json.loads((run / "metrics.json").read_text())
    assert "miou" in metrics["test"] and metrics["model"]["task"] == "segmentation"
    code, out, err = run_cli("evaluate", run / "best.safetensors", "--data", root, "--json")
    assert code == 0, err
    result = json.loads(out)
    assert 0 <= result["miou"] <= 1 and len(result["iou"]) == 3
    code, out, err = run_cli("evaluate", run / "best.safetensors", "--data", root)
    assert code == 0 and "IoU" in out and "blue" in out and "miou" in out
    # predict an image of another size: label PNG with the classes' palette, overlay of the image's size
    img = (np.random.default_rng(3).random((45, 70, 3)) * 255).astype(np.uint8)
    Image.fromarray(img).save(tmp_path / "x.png")
    code, out, err = run_cli("predict", run / "best.safetensors", tmp_path / "x.png", "--out", tmp_path / "pred")
    assert code == 0, err
    assert "70x45" in out
    labels = Image.open(tmp_path / "pred" / "x_labels.png")
    assert labels.mode == "P" and labels.size == (70, 45) and np.asarray(labels).max() < 3
    assert np.asarray(Image.open(tmp_path / "pred" / "x.png")).shape == (45, 70, 3)
    pred = json.loads((tmp_path / "pred" / "x.json").read_text())
    assert abs(sum(pred["classes"].values()) - 1) < 1e-3 and "labels" not in pred
    # tiled prediction through the CLI option gives the same labels as whole-image at a tile this large
    code, out, err = run_cli("predict", run / "best.safetensors", tmp_path / "x.png", "--set", "tile=48",
                             "--set", "overlap=16", "--json")
    assert code == 0 and json.loads(out)[0]["tiled"] is True


def test_predict_reports_a_missing_image(tmp_path, run_cli):
    root = make_label_folder(tmp_path / "d", n=8)
    run = tmp_path / "run"
    assert run_cli("train", "--model", "unet_small", "--data", root, "--out", run, "--epochs", "1",
                   "--image-size", "32", "--no-progress")[0] == 0
    line = _cli_error(run_cli, "predict", run / "last.safetensors", tmp_path / "nope.png")
    assert "nope.png" in line


def test_errors_are_cnnkit_errors():
    with pytest.raises(CnnkitError):
        get_task("segmentation").load_data("/no/such/folder")


def test_valid_padding_unet_trains_on_the_centre_of_the_labels():
    """The paper's valid U-Net predicts the inner part of its input; the task scores it on that part."""
    from cnnkit.models import create_model
    from cnnkit.segment.task import fit_targets
    from cnnkit.train import TrainConfig, fit

    task = get_task("segmentation")
    data = task.load_data("scenes", image_size=72, augment="none", scene_counts={"train": 8, "val": 4, "test": 0})
    model = create_model("unet", in_chans=3, num_classes=6, base_width=4, depth=2)
    assert model.size_rule.margin == 20
    result = fit(model, data["train"], data["val"], TrainConfig(epochs=1, batch_size=4), progress=False, task=task)
    assert 0 <= result.history[-1]["val_miou"] <= 1
    y = torch.arange(100).reshape(1, 10, 10)
    assert fit_targets(torch.zeros(1, 2, 4, 6), y).tolist() == y[:, 3:7, 2:8].tolist()

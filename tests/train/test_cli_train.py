"""`cnnkit train`, `evaluate` and `predict` from the command line, bad input included."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cnnkit.checkpoint import read_model_meta


def _digit_images(per_class: int):
    from sklearn.datasets import load_digits

    d = load_digits()
    for c in range(10):
        for k, i in enumerate(np.flatnonzero(d.target == c)[:per_class]):
            img = Image.fromarray((d.images[i] * (255 / 16)).astype(np.uint8)).resize((32, 32), Image.BILINEAR)
            yield c, k, img


@pytest.fixture(scope="module")
def digits_folder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("digits")
    for c, k, img in _digit_images(12):
        (root / str(c)).mkdir(exist_ok=True)
        img.save(root / str(c) / f"{k}.png")
    return root


@pytest.fixture(scope="module")
def trained_run(digits_folder, tmp_path_factory) -> Path:
    from cnnkit.cli.main import main

    out = tmp_path_factory.mktemp("run") / "lenet"
    code = main(["train", "--model", "lenet5_modern", "--data", str(digits_folder), "--epochs", "3", "--out",
                 str(out), "--batch-size", "16", "--lr", "0.003", "--no-progress"])
    assert code == 0
    return out


def _one_line(err: str) -> str:
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def test_train_writes_the_run_folder(trained_run):
    for name in ("last.safetensors", "last.state.pt", "best.safetensors", "log.csv", "metrics.json", "curves.png"):
        assert (trained_run / name).is_file(), name
    metrics = json.loads((trained_run / "metrics.json").read_text())
    assert metrics["epochs"] == 3 and metrics["test"]["n"] == 20  # 2 test images of each of the 10 classes
    assert 0.0 <= metrics["test"]["accuracy"] <= 1.0
    meta = read_model_meta(trained_run / "best.safetensors")
    assert meta["model"] == "lenet5_modern" and meta["classes"] == [str(i) for i in range(10)]
    assert meta["input_size"] == [1, 32, 32] and len(meta["mean"]) == 1


def test_evaluate_reproduces_the_test_accuracy_of_train(run_cli, trained_run, digits_folder):
    code, out, err = run_cli("evaluate", trained_run / "best.safetensors", "--data", digits_folder, "--json")
    assert code == 0, err
    got = json.loads(out)
    metrics = json.loads((trained_run / "metrics.json").read_text())
    assert got["n"] == 20
    assert got["accuracy"] == pytest.approx(metrics["test"]["accuracy"])
    assert got["confusion_matrix"] == metrics["test"]["confusion_matrix"]
    code, out, _ = run_cli("evaluate", trained_run / "best.safetensors", "--data", digits_folder, "--split", "val")
    assert code == 0 and "accuracy" in out and "columns: predicted" in out


def test_evaluate_several_checkpoints_is_an_ensemble(run_cli, trained_run, digits_folder):
    best, last = trained_run / "best.safetensors", trained_run / "last.safetensors"
    code, out, err = run_cli("evaluate", best, last, "--data", digits_folder, "--json")
    assert code == 0, err
    got = json.loads(out)
    assert [m["checkpoint"] for m in got["members"]] == [str(best), str(last)] and got["n"] == 20
    code, out, err = run_cli("evaluate", best, last, "--data", digits_folder)
    assert code == 0 and "ensemble of 2" in out


def test_predict_gives_class_names_and_probabilities(run_cli, trained_run, digits_folder):
    images = sorted((digits_folder / "3").glob("*.png"))[:2]
    code, out, err = run_cli("predict", trained_run / "best.safetensors", *images, "--topk", "3", "--json")
    assert code == 0, err
    rows = json.loads(out)
    assert [r["image"] for r in rows] == [str(p) for p in images]
    for r in rows:
        probs = [p["probability"] for p in r["predictions"]]
        assert len(probs) == 3 and probs == sorted(probs, reverse=True) and sum(probs) <= 1.0 + 1e-6
        assert all(p["class"] in [str(i) for i in range(10)] for p in r["predictions"])


def test_predict_matches_the_model_on_the_data_pipeline(trained_run, digits_folder):
    # the same image through predict's preprocessing and through the training data set gives the same input
    from cnnkit.cli.predict import preprocess
    from cnnkit.data import load_dataset

    meta = read_model_meta(trained_run / "best.safetensors")
    ds = load_dataset(str(digits_folder), split="all", image_size=32, in_chans=1, mean=meta["mean"], std=meta["std"])
    i = 5
    x = preprocess([ds.describe(i)], meta)
    assert torch.allclose(x[0], ds[i][0], atol=1e-6)


def test_predict_missing_image_is_one_line(run_cli, trained_run, tmp_path):
    code, _, err = run_cli("predict", trained_run / "best.safetensors", tmp_path / "nope.png")
    assert code == 2 and "nope.png" in _one_line(err)


def test_evaluate_names_both_class_counts(run_cli, trained_run, tmp_path):
    other = tmp_path / "three"
    for c, k, img in _digit_images(6):
        if c < 3:
            (other / str(c)).mkdir(parents=True, exist_ok=True)
            img.save(other / str(c) / f"{k}.png")
    code, _, err = run_cli("evaluate", trained_run / "best.safetensors", "--data", other)
    line = _one_line(err)
    assert code == 2 and "10 classes" in line and "has 3" in line


def test_train_refuses_to_overwrite_a_run(run_cli, trained_run, digits_folder):
    code, _, err = run_cli("train", "--model", "lenet5", "--data", digits_folder, "--out", trained_run)
    assert code == 2 and "--resume" in _one_line(err)


@pytest.fixture
def small_folder(tmp_path) -> Path:
    root = tmp_path / "data"
    for c, k, img in _digit_images(5):
        if c < 3:
            (root / str(c)).mkdir(parents=True, exist_ok=True)
            img.save(root / str(c) / f"{k}.png")
    return root


def _train(run_cli, data, out, *extra):
    return run_cli("train", "--model", "lenet5", "--data", data, "--epochs", "1", "--out", out, "--batch-size", "8",
                   "--no-progress", *extra)


def test_corrupt_image_is_skipped_with_a_warning_or_stops_with_strict(run_cli, small_folder, tmp_path):
    bad = small_folder / "1" / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n this is not really a png")
    code, out, err = _train(run_cli, small_folder, tmp_path / "a")
    assert code == 0, err
    warnings = [line for line in err.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "broken.png" in warnings[0]
    code, _, err = _train(run_cli, small_folder, tmp_path / "b", "--strict")
    assert code == 2 and "broken.png" in _one_line(err)


def test_empty_class_folder(run_cli, small_folder, tmp_path):
    (small_folder / "9").mkdir()
    code, _, err = _train(run_cli, small_folder, tmp_path / "a", "--strict")
    line = _one_line(err)
    assert code == 2 and "empty class folder" in line and "9" in line
    code, _, err = _train(run_cli, small_folder, tmp_path / "b")
    assert code == 0 and "empty class folder" in err


def test_csv_row_with_missing_file(run_cli, small_folder, tmp_path):
    csv = tmp_path / "list.csv"
    rows = [f"{p.relative_to(tmp_path)},{p.parent.name}" for p in sorted(small_folder.rglob("*.png"))]
    rows.insert(3, "data/0/missing.png,0")
    csv.write_text("path,label\n" + "\n".join(rows) + "\n")
    code, _, err = _train(run_cli, csv, tmp_path / "a")
    line = _one_line(err)
    assert code == 2 and "missing.png" in line and "row 5" in line


def test_diverging_loss_stops_with_one_line(run_cli, small_folder, tmp_path):
    code, _, err = run_cli("train", "--model", "lenet5_modern", "--data", small_folder, "--epochs", "5", "--out",
                           tmp_path / "a", "--batch-size", "4", "--optimizer", "sgd", "--lr", "1e30", "--schedule",
                           "none", "--no-progress")
    line = _one_line(err)
    assert code == 2 and ("nan" in line.lower() or "inf" in line.lower()) and "learning rate" in line


def test_unknown_model_and_data_are_one_line(run_cli, small_folder, tmp_path):
    code, _, err = run_cli("train", "--model", "lenet55", "--data", small_folder, "--out", tmp_path / "x")
    assert code == 2 and "lenet5" in _one_line(err)
    code, _, err = run_cli("train", "--model", "lenet5", "--data", "digitz", "--out", tmp_path / "y")
    assert code == 2 and "digits" in _one_line(err)


def test_transfer_from_a_checkpoint_with_frozen_backbone(run_cli, trained_run, small_folder, tmp_path):
    from safetensors.torch import load_file

    out = tmp_path / "transfer"
    code, _, err = run_cli("train", "--model", "lenet5_modern", "--data", small_folder, "--epochs", "2", "--out", out,
                           "--batch-size", "4", "--weights", trained_run / "best.safetensors", "--freeze", "backbone",
                           "--no-progress")
    assert code == 0, err
    source, tuned = load_file(str(trained_run / "best.safetensors")), load_file(str(out / "last.safetensors"))
    assert torch.equal(source["c1.weight"], tuned["c1.weight"])  # the backbone came from the file, frozen
    assert tuned["output.weight"].shape == (3, 84)  # a new head for the 3 classes
    assert read_model_meta(out / "last.safetensors")["model_kwargs"]["num_classes"] == 3

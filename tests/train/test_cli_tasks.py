"""`cnnkit train / evaluate / predict / export` serve a task that is not classification: the toy box task of
toy_box.py, given the CLI hooks (load_data, predict, render, describe) and a registered model here."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from toy_box import SIZE, BoxNet, Squares, ToyBoxTask, box_iou_pairs

from cnnkit.models import list_models, register_model
from cnnkit.tasks import register_task


@register_task
class CliBoxTask(ToyBoxTask):
    name = "test_cli_box"
    train_defaults = {"epochs": 2, "batch_size": 8}  # for flags the user does not give

    def model_kwargs(self, train_data, *, verbose=True):
        if verbose:
            print(f"toy: {len(train_data)} training images")
        return {"width": 6, "not_a_builder_argument": 1}

    def load_data(self, source, **opts):
        if source != "squares":
            from cnnkit.errors import InputError

            raise InputError(f"unknown data {source!r}; the toy task knows 'squares'")
        splits = {"train": Squares(64, seed=0), "val": Squares(24, seed=1), "test": Squares(24, seed=2)}
        return {s: splits[s] for s in opts.get("splits") or splits}

    def predict(self, model, image, meta, **opts):
        x = torch.from_numpy(np.asarray(image, dtype=np.float32).mean(axis=2) / 255.0)[None, None]
        with torch.no_grad():
            box = model(x)[0]
        return {"boxes": [[round(float(v), 3) for v in box]], "seen": sorted(opts)}

    def render(self, image, result, meta):
        out = np.array(image, dtype=np.uint8)
        x1, y1, x2, y2 = (int(round(v)) for v in result["boxes"][0])
        out[max(y1, 0):max(y2, 0), max(x1, 0):max(x2, 0), 0] = 255
        return out

    def describe(self, result):
        return "box " + " ".join(f"{v:.1f}" for v in result["boxes"][0])


class CliBoxNet(BoxNet):
    task = "test_cli_box"


if "toy_cli_boxnet" not in list_models():
    @register_model
    def toy_cli_boxnet(*, in_chans: int = 1, width: int = 8) -> CliBoxNet:
        assert in_chans == 1
        model = CliBoxNet()
        model.width = width
        return model


@pytest.fixture(scope="module")
def box_run(tmp_path_factory):
    from cnnkit.cli.main import main

    out = tmp_path_factory.mktemp("boxes") / "run"
    code = main(["train", "--model", "toy_cli_boxnet", "--data", "squares", "--epochs", "4", "--batch-size", "16",
                 "--lr", "0.003", "--out", str(out), "--no-progress"])
    assert code == 0
    return out


def test_train_runs_the_models_task(box_run):
    from cnnkit.checkpoint import read_model_meta

    metrics = json.loads((box_run / "metrics.json").read_text())
    assert metrics["best_metric"] == "miou" and metrics["test"]["n"] == 24
    assert 0.0 <= metrics["test"]["miou"] <= 1.0 and metrics["test_weights"] == "best"
    meta = read_model_meta(box_run / "best.safetensors")
    assert meta["task"] == "test_cli_box" and meta["model"] == "toy_cli_boxnet"
    assert meta["model_kwargs"] == {"in_chans": 1, "width": 6}  # the task's model_kwargs, those the builder takes
    assert meta["input_size"] == [1, SIZE, SIZE] and "classes" not in meta
    header = (box_run / "log.csv").read_text().splitlines()[0]
    assert header == "epoch,train_loss,train_iou,train_l1,val_loss,val_miou,lr,seconds"


def test_evaluate_prints_the_task_meters_numbers(run_cli, box_run):
    code, out, err = run_cli("evaluate", box_run / "best.safetensors", "--data", "squares", "--json")
    assert code == 0, err
    got = json.loads(out)
    metrics = json.loads((box_run / "metrics.json").read_text())
    assert got["task"] == "test_cli_box" and got["n"] == 24
    assert got["miou"] == pytest.approx(metrics["test"]["miou"])
    code, out, err = run_cli("evaluate", box_run / "best.safetensors", "--data", "squares", "--split", "val")
    assert code == 0, err
    assert "miou" in out and "24 images" in out
    code, out, err = run_cli("evaluate", box_run / "best.safetensors", "--data", "squares", "--tta", "flip")
    assert code == 2 and "for classifiers" in err
    code, _, err = run_cli("evaluate", box_run / "best.safetensors", box_run / "last.safetensors", "--data",
                           "squares")
    assert code == 2 and "ensemble" in err


def test_predict_writes_the_drawing_and_json(run_cli, box_run, tmp_path):
    from cnnkit.checkpoint import load_model_file
    from cnnkit.io import read_image, save_image

    image, target = Squares(1, seed=7)[0]
    pixels = (image[0].clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    save_image(tmp_path / "sq.png", pixels)
    code, out, err = run_cli("predict", box_run / "best.safetensors", tmp_path / "sq.png", "--out", tmp_path / "pred",
                             "--conf", "0.5", "--set", "max_det=3")
    assert code == 0, err
    assert out.startswith(f"{tmp_path / 'sq.png'}: box ")
    saved = json.loads((tmp_path / "pred" / "sq.json").read_text())
    assert saved["image"] == str(tmp_path / "sq.png") and saved["seen"] == ["conf", "max_det", "topk"]
    drawing = read_image(tmp_path / "pred" / "sq.png")
    assert drawing.shape == (SIZE, SIZE, 3) and (drawing[:, :, 0] == 255).any()
    # the predicted box is the model's on that image
    model, _ = load_model_file(box_run / "best.safetensors")
    with torch.no_grad():
        want = model(torch.from_numpy(pixels.astype(np.float32) / 255.0)[None, None])[0]
    assert saved["boxes"][0] == pytest.approx(want.tolist(), abs=2e-3)
    assert float(box_iou_pairs(torch.tensor(saved["boxes"]), want[None])) > 0.99
    code, out, _ = run_cli("predict", box_run / "best.safetensors", tmp_path / "sq.png", "--json")
    assert code == 0 and json.loads(out)[0]["boxes"] == saved["boxes"]


def test_export_stays_generic(run_cli, box_run, tmp_path):
    pytest.importorskip("onnxruntime")
    code, out, err = run_cli("export", box_run / "best.safetensors", "-o", tmp_path / "box.onnx")
    assert code == 0, err
    assert (tmp_path / "box.onnx").is_file() and "matches PyTorch" in out


def test_flags_not_given_take_the_tasks_defaults(run_cli, tmp_path):
    code, out, err = run_cli("train", "--model", "toy_cli_boxnet", "--data", "squares", "--out", tmp_path / "run",
                             "--no-progress")
    assert code == 0, err
    assert "toy: 64 training images" in out
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["config"]["epochs"] == 2 and metrics["config"]["batch_size"] == 8
    assert metrics["global_step"] == 2 * 8 and metrics["config"]["weight_decay"] == 5e-4  # cnnkit's own default

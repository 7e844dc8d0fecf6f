"""export_model / `cnnkit export`: the exported file, run by ONNX Runtime or torch.jit.load, equals PyTorch."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch
import torch.nn as nn

from cnnkit.errors import InputError, MissingFileError
from cnnkit.models import create_model, list_models
from cnnkit.models.export import OnnxMissingError, check_export, export_model, load_torchscript, onnx_session

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")


class _Net(nn.Module):
    """Small, with the layers the zoo uses: conv, BN, ReLU, pooling, residual add, concat, linear."""

    default_input_size = (3, 24, 24)

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.branch_a = nn.Conv2d(8, 8, 1)
        self.branch_b = nn.Conv2d(8, 8, 3, padding=1, groups=8)
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(16, 4)

    def forward(self, x):
        x = self.stem(x)
        x = torch.cat([self.branch_a(x) + x, self.branch_b(x)], 1)
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(self.pool(x), 1), 1))


def _net() -> nn.Module:
    net = _Net()
    with torch.no_grad():  # non-trivial BN statistics, so that eval-mode export is actually checked
        net.stem[1].running_mean.uniform_(-1, 1)
        net.stem[1].running_var.uniform_(0.5, 2)
    return net.eval()


def test_onnx_matches_pytorch_with_free_batch_size(tmp_path):
    model = _net()
    path = export_model(model, tmp_path / "net.onnx", "onnx", meta={"classes": ["a", "b", "c", "d"]})
    session = onnx_session(path)
    for batch in (1, 3):  # exported with batch 1; the batch axis must stay free
        x = torch.randn(batch, 3, 24, 24)
        got = session.run(None, {"images": x.numpy()})[0]
        with torch.no_grad():
            want = model(x).numpy()
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    assert check_export(model, path, "onnx", torch.randn(2, 3, 24, 24)) < 1e-4

    import onnx

    props = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert json.loads(props["cnnkit"]) == {"classes": ["a", "b", "c", "d"]}


def test_torchscript_reloads_and_matches(tmp_path):
    model = _net()
    path = export_model(model, tmp_path / "net.pt", "torchscript", input_shape=(3, 16, 16), meta={"mean": [0.5]})
    module, meta = load_torchscript(path)
    x = torch.randn(2, 3, 24, 24)
    with torch.no_grad():
        torch.testing.assert_close(module(x), model(x), rtol=1e-5, atol=1e-6)
    assert meta == {"mean": [0.5]}


class _Broken(nn.Module):
    default_input_size = (3, 8, 8)

    def forward(self, x):
        raise RuntimeError("cannot run")


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_failed_export_leaves_the_old_file(tmp_path, fmt):
    target = tmp_path / "model.out"
    target.write_bytes(b"old")
    with pytest.raises(InputError):  # the eager check run before exporting names the input it cannot take
        export_model(_Broken(), target, fmt)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["model.out"]  # no temporary file left behind


def test_bad_arguments():
    with pytest.raises(InputError, match="format"):
        export_model(_net(), "x.bin", "tflite")
    with pytest.raises(InputError, match="input size"):
        export_model(nn.Linear(2, 2), "x.onnx", "onnx")


def test_onnx_missing_says_what_to_install(tmp_path, monkeypatch, run_cli):
    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx now raises ImportError
    with pytest.raises(OnnxMissingError, match=r"cnnkit\[onnx\]"):
        export_model(_net(), tmp_path / "net.onnx", "onnx")
    if "lenet5" in list_models():
        code, _, err = run_cli("export", "lenet5", "-o", tmp_path / "l.onnx")
        assert code == 2 and "cnnkit[onnx]" in err and len(err.strip().splitlines()) == 1


needs_lenet = pytest.mark.skipif("lenet5" not in list_models(), reason="lenet5 not registered yet")


@needs_lenet
def test_cli_export_name_with_weights(tmp_path, run_cli):
    src = create_model("lenet5").eval()
    with torch.no_grad():
        for p in src.parameters():
            p.normal_()
    torch.save(src.state_dict(), tmp_path / "w.pth")
    code, out, _ = run_cli("export", "lenet5", "--weights", tmp_path / "w.pth", "-o", tmp_path / "l.onnx")
    assert code == 0 and "matches PyTorch" in out
    x = torch.randn(2, 1, 32, 32)
    got = onnx_session(tmp_path / "l.onnx").run(None, {"images": x.numpy()})[0]
    with torch.no_grad():
        np.testing.assert_allclose(got, src(x).numpy(), rtol=1e-4, atol=1e-4)  # the given weights, not random


@needs_lenet
def test_cli_export_checkpoint_to_torchscript(tmp_path, run_cli):
    from cnnkit.checkpoint import save_model_file

    src = create_model("lenet5", num_classes=3).eval()
    meta = {"model": "lenet5", "model_kwargs": {"num_classes": 3}, "classes": ["x", "y", "z"]}
    save_model_file(tmp_path / "ck.safetensors", src, meta)
    code, out, _ = run_cli("export", tmp_path / "ck.safetensors", "--format", "torchscript", "-o", tmp_path / "c.pt")
    assert code == 0 and "matches" in out
    module, meta_back = load_torchscript(tmp_path / "c.pt")
    assert meta_back["classes"] == ["x", "y", "z"] and meta_back["input_size"] == [1, 32, 32]
    x = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(module(x), src(x))


def test_cli_export_errors(tmp_path, run_cli):
    code, _, err = run_cli("export", "no_such_model_xyz", "-o", tmp_path / "a.onnx")
    assert code == 2 and "unknown model" in err
    code, _, err = run_cli("export", tmp_path / "missing.safetensors")
    assert code == 2 and "not found" in err
    (tmp_path / "junk.safetensors").write_bytes(b"junk" * 10)
    code, _, err = run_cli("export", tmp_path / "junk.safetensors")
    assert code == 2 and len(err.strip().splitlines()) == 1


def test_load_source_missing_path():
    from cnnkit.checkpoint import load_source

    with pytest.raises(MissingFileError):
        load_source("some/dir/model.safetensors")


@pytest.mark.parametrize("args, expected", [
    (("lenet5", "--opset", "3"), "opset 3 is not supported"),
    (("lenet5", "--size", "8"), "got 8x8"),
    (("alexnet", "--size", "16"), "cannot take a 16x16 input"),
])
def test_export_refuses_what_cannot_work_in_one_line(run_cli, tmp_path, args, expected):
    out = tmp_path / "m.onnx"
    code, _, err = run_cli("export", *args, "-o", out)
    assert code == 2 and expected in err and len(err.strip().splitlines()) == 1 and "tensor(" not in err
    assert not out.exists()

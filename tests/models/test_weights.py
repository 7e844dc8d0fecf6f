"""load_weights / read_weights / `cnnkit weights`: real files written with torch.save and safetensors."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
import torch.nn as nn

from cnnkit.errors import FileFormatError
from cnnkit.models import list_models, registry
from cnnkit.models.backbone import Backbone
from cnnkit.models.weights import _model_signature, guess_architecture, load_weights, read_weights


class TinyNet(Backbone):
    """A small backbone with torchvision-style names (conv1, bn1, layer1.0 ..., fc)."""

    default_input_size = (3, 16, 16)

    def __init__(self, num_classes: int = 10, width: int = 8):
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.layer1 = nn.Sequential(nn.Conv2d(width, width * 2, 3, stride=2, padding=1), nn.BatchNorm2d(width * 2),
                                    nn.ReLU())
        self.num_features = width * 2
        self.stage_channels = [width, width * 2]
        self.fc = nn.Linear(width * 2, num_classes)

    def forward_stages(self, x):
        a = torch.relu(self.bn1(self.conv1(x)))
        return [a, self.layer1(a)]

    def forward_head(self, x, pre_logits=False):
        x = x.mean((2, 3))
        return x if pre_logits else self.fc(x)

    def get_classifier(self):
        return self.fc

    def reset_classifier(self, num_classes):
        self.fc = nn.Linear(self.num_features, num_classes) if num_classes else nn.Identity()


def _randomize(model: nn.Module, seed: int) -> nn.Module:
    """Give every parameter and BN statistic a seed-dependent value, so two models surely differ."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for k, t in model.state_dict().items():
            if t.is_floating_point():
                positive = "running_var" in k
                t.copy_(torch.rand(t.shape, generator=g) + 0.5 if positive else torch.randn(t.shape, generator=g))
    return model.eval()


def _same_output(a: nn.Module, b: nn.Module, size=(2, 3, 16, 16)) -> bool:
    x = torch.randn(size)
    with torch.no_grad():
        return torch.allclose(a.eval()(x), b.eval()(x), rtol=1e-5, atol=1e-6)


def test_pth_state_dict_loads_and_outputs_match(tmp_path):
    src = _randomize(TinyNet(), 1)
    torch.save(src.state_dict(), tmp_path / "w.pth")
    dst = _randomize(TinyNet(), 2)
    assert not _same_output(src, dst)  # the test can fail: different weights give different outputs
    report = load_weights(dst, tmp_path / "w.pth")
    assert report.ok and not report.skipped_classifier
    assert sorted(report.loaded) == sorted(src.state_dict())
    assert _same_output(src, dst)


def test_legacy_pth_format_loads(tmp_path):
    src = _randomize(TinyNet(), 3)
    torch.save(src.state_dict(), tmp_path / "old.pth", _use_new_zipfile_serialization=False)
    assert read_weights(tmp_path / "old.pth").format == "torch-legacy"
    dst = TinyNet()
    assert load_weights(dst, tmp_path / "old.pth").ok
    assert _same_output(src, dst)


@pytest.mark.parametrize("name", [n for n in ("resnet18",) if n in list_models()] or ["resnet18"])
def test_registered_model_round_trip(tmp_path, name):
    if name not in list_models():
        pytest.skip(f"{name} is not registered yet")
    from cnnkit.models import create_model

    src = _randomize(create_model(name), 1)
    torch.save(src.state_dict(), tmp_path / "w.pth")
    dst = create_model(name).eval()
    report = load_weights(dst, tmp_path / "w.pth")
    assert report.ok, str(report)
    assert _same_output(src, dst, (1, 3, 64, 64))


def test_missing_unexpected_and_wrong_shape_are_named(tmp_path, caplog):
    sd = _randomize(TinyNet(), 1).state_dict()
    del sd["bn1.running_mean"]
    sd["extra.weight"] = torch.zeros(3)
    sd["layer1.0.weight"] = torch.zeros(16, 8, 5, 5)
    torch.save(sd, tmp_path / "w.pth")
    model = TinyNet()
    before = model.layer1[0].weight.detach().clone()
    with caplog.at_level(logging.WARNING, logger="cnnkit.weights"):
        report = load_weights(model, tmp_path / "w.pth")
    assert report.missing == ["bn1.running_mean"]
    assert report.unexpected == ["extra.weight"]
    assert report.shape_mismatch == [("layer1.0.weight", (16, 8, 3, 3), (16, 8, 5, 5))]
    assert not report.ok
    assert "bn1.running_mean" in str(report) and "extra.weight" in str(report) and "layer1.0.weight" in str(report)
    assert torch.equal(model.layer1[0].weight, before)  # the wrong-shape tensor is left alone
    assert torch.equal(model.layer1[0].bias, sd["layer1.0.bias"])  # its neighbours load
    assert "extra.weight" in caplog.text
    with pytest.raises(FileFormatError, match="bn1.running_mean"):
        load_weights(TinyNet(), tmp_path / "w.pth", strict=True)


def test_classifier_with_other_class_count_is_skipped(tmp_path, caplog):
    src = _randomize(TinyNet(num_classes=1000), 1)
    torch.save(src.state_dict(), tmp_path / "imagenet.pth")
    dst = TinyNet(num_classes=5)
    fresh_fc = dst.fc.weight.detach().clone()
    with caplog.at_level(logging.WARNING, logger="cnnkit.weights"):
        report = load_weights(dst, tmp_path / "imagenet.pth", strict=True)  # strict still accepts it
    assert sorted(report.skipped_classifier) == ["fc.bias", "fc.weight"]
    assert report.ok and not report.shape_mismatch
    assert set(report.loaded) == set(src.state_dict()) - {"fc.weight", "fc.bias"}
    assert torch.equal(dst.fc.weight, fresh_fc)
    assert "1000 classes" in caplog.text and "the model 5" in caplog.text
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        assert torch.allclose(src.forward_features(x), dst.eval().forward_features(x), atol=1e-6)


def test_classifier_removed_by_reset_is_skipped(tmp_path):
    torch.save(_randomize(TinyNet(), 1).state_dict(), tmp_path / "w.pth")
    dst = TinyNet()
    dst.reset_classifier(0)
    report = load_weights(dst, tmp_path / "w.pth")
    assert sorted(report.skipped_classifier) == ["fc.bias", "fc.weight"] and report.ok


def test_safetensors_round_trip_and_cnnkit_metadata(tmp_path):
    from safetensors.torch import save_file

    from cnnkit.checkpoint import save_model_file

    src = _randomize(TinyNet(), 4)
    save_file({k: v.contiguous() for k, v in src.state_dict().items()}, str(tmp_path / "w.safetensors"))
    dst = TinyNet()
    assert load_weights(dst, tmp_path / "w.safetensors").ok
    assert _same_output(src, dst)

    meta = {"model": "tinynet", "model_kwargs": {"num_classes": 10}, "classes": list("abcdefghij")}
    save_model_file(tmp_path / "m.cnnkit", src, meta)
    wf = read_weights(tmp_path / "m.cnnkit")
    assert wf.format == "safetensors" and wf.meta == meta
    dst = TinyNet()
    assert load_weights(dst, tmp_path / "m.cnnkit").ok
    assert _same_output(src, dst)


@pytest.mark.parametrize("wrap", ["state_dict", "model", "model_state_dict", "module_prefix", "lightning"])
def test_training_checkpoint_wrappers(tmp_path, wrap):
    sd = _randomize(TinyNet(), 5).state_dict()
    if wrap == "module_prefix":  # nn.DataParallel
        obj = {f"module.{k}": v for k, v in sd.items()}
    elif wrap == "lightning":  # LightningModule keys under state_dict, prefixed by the attribute name
        obj = {"state_dict": {f"model.{k}": v for k, v in sd.items()}, "epoch": 3}
    else:
        obj = {wrap: sd, "epoch": 7, "optimizer": {"state": {}, "param_groups": [{"lr": 0.1}]}}
    torch.save(obj, tmp_path / "ckpt.pth")
    dst = TinyNet()
    report = load_weights(dst, tmp_path / "ckpt.pth")
    assert report.ok and len(report.loaded) == len(sd), str(report)
    assert all(torch.equal(dst.state_dict()[k], v) for k, v in sd.items())


def test_partial_prefix_keeps_other_keys_unexpected(tmp_path):
    sd = _randomize(TinyNet(), 6).state_dict()
    obj = {**{f"model.{k}": v for k, v in sd.items()}, "ema_decay": torch.tensor(0.99)}
    torch.save(obj, tmp_path / "ckpt.pth")
    report = load_weights(TinyNet(), tmp_path / "ckpt.pth")
    assert report.prefix == "model." and report.unexpected == ["ema_decay"] and not report.missing


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.mark.parametrize("kind", ["zip", "legacy", "safetensors"])
def test_truncated_files_give_one_line_error(tmp_path, run_cli, kind):
    from safetensors.torch import save_file

    sd = TinyNet().state_dict()
    path = tmp_path / ("w.safetensors" if kind == "safetensors" else "w.pth")
    if kind == "safetensors":
        save_file(sd, str(path))
    else:
        torch.save(sd, path, _use_new_zipfile_serialization=kind == "zip")
    _truncate(path)
    with pytest.raises(FileFormatError, match="truncated"):
        load_weights(TinyNet(), path)
    code, out, err = run_cli("weights", "inspect", path)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1 and "truncated" in err


@pytest.mark.parametrize("content", [b"hello, I am not a checkpoint\n", b"", b"\x89PNG\r\n\x1a\n" + b"\0" * 64])
def test_not_a_checkpoint(tmp_path, run_cli, content):
    path = tmp_path / "w.pth"
    path.write_bytes(content)
    with pytest.raises(FileFormatError, match="w.pth"):
        read_weights(path)
    code, _, err = run_cli("weights", "inspect", path)
    assert code == 2 and len(err.strip().splitlines()) == 1


def test_non_tensor_contents_and_no_shared_names(tmp_path):
    torch.save({"epoch": 3, "lr": 0.1}, tmp_path / "a.pth")
    with pytest.raises(FileFormatError, match="no tensors"):
        read_weights(tmp_path / "a.pth")
    torch.save({"foo.weight": torch.zeros(2)}, tmp_path / "b.pth")
    with pytest.raises(FileFormatError, match="shares no tensor names"):
        load_weights(TinyNet(), tmp_path / "b.pth")


class _Payload:
    """Unpickling this would call open(marker, "w"): it would run code from the file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_pickled_code_is_refused_and_never_runs(tmp_path, run_cli):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    torch.save({"conv1.weight": torch.zeros(8, 3, 3, 3), "x": _Payload(marker)}, path)
    with pytest.raises(FileFormatError, match="refusing"):
        load_weights(TinyNet(), path)
    code, _, err = run_cli("weights", "inspect", path)
    assert code == 2 and "refusing" in err and len(err.strip().splitlines()) == 1
    assert not marker.exists()
    # The payload is live: an unsafe load would have run it (so the check above can fail).
    live = tmp_path / "live"
    torch.save({"x": _Payload(live)}, tmp_path / "live.pth")
    torch.load(tmp_path / "live.pth", weights_only=False)
    assert live.exists()


def test_guess_architecture_and_inspect_cli(tmp_path, run_cli, monkeypatch):
    monkeypatch.setitem(registry._MODELS, "tinynet_test", lambda *, num_classes=10: TinyNet(num_classes))
    monkeypatch.setitem(registry._MODELS, "tinynet_wide_test", lambda *, num_classes=10: TinyNet(num_classes, 16))
    _model_signature.cache_clear()
    try:
        sd = TinyNet(num_classes=3).state_dict()
        guesses = guess_architecture(sd)
        assert guesses[0][0] == "tinynet_test" and guesses[0][1] > 0.7
        assert dict(guesses)["tinynet_wide_test"] < guesses[0][1]
        torch.save({"state_dict": sd, "epoch": 1}, tmp_path / "w.pth")
        code, out, _ = run_cli("weights", "inspect", tmp_path / "w.pth")
        assert code == 0
        assert "tinynet_test" in out and "conv1.weight" in out and "[8, 3, 3, 3]" in out and "'state_dict'" in out
        n = sum(t.numel() for t in sd.values() if t.is_floating_point())
        assert f"{n:,}" in out
        code, out, _ = run_cli("weights", "inspect", tmp_path / "w.pth", "--json")
        import json

        info = json.loads(out)
        assert info["num_params"] == n and info["guess"][0]["model"] == "tinynet_test"
        assert {t["name"] for t in info["tensors"]} == set(sd)
    finally:
        _model_signature.cache_clear()


def test_check_cli(tmp_path, run_cli, monkeypatch):
    monkeypatch.setitem(registry._MODELS, "tinynet_test", lambda *, num_classes=10: TinyNet(num_classes))
    torch.save(TinyNet(num_classes=10).state_dict(), tmp_path / "w.pth")
    code, out, _ = run_cli("weights", "check", "tinynet_test", tmp_path / "w.pth", "--num-classes", "4")
    assert code == 0 and "skipped classifier" in out and "fc.weight" in out
    code, _, err = run_cli("weights", "check", "tinynet_test", tmp_path / "w.pth", "--num-classes", "4", "--strict")
    assert code == 2 and "--strict" in err and "--num-classes" in err
    code, _, _ = run_cli("weights", "check", "tinynet_test", tmp_path / "w.pth", "--num-classes", "10", "--strict")
    assert code == 0


# ------------------------------------------------------------------ torchvision checkpoints (recorded key sets)

_TV_KEYS = Path(__file__).parent / "data" / "torchvision_state_dicts.json"


def _torchvision_state(name: str, device: str = "cpu") -> dict[str, torch.Tensor]:
    """A state dict with exactly the names and shapes torchvision's `name` has (recorded from torchvision)."""
    import json

    entries = json.loads(_TV_KEYS.read_text())[name]
    return {k: torch.zeros(shape, dtype=torch.long if k.endswith("num_batches_tracked") else torch.float32,
                           device=device) for k, shape in entries}


@pytest.mark.skipif(not _TV_KEYS.exists(), reason="no recorded torchvision key sets")
def test_guess_recognises_every_torchvision_architecture():
    import json

    names = [n for n in json.loads(_TV_KEYS.read_text()) if n in list_models()]
    assert names
    for name in names:
        guesses = guess_architecture(_torchvision_state(name, "meta"))  # shapes only, no memory
        assert guesses[0] == (name, 1.0), (name, guesses)


@pytest.mark.parametrize("name, head", [("resnet18", "fc"), ("mobilenet_v2", "classifier.1")])
def test_torchvision_checkpoint_into_a_five_class_model(tmp_path, name, head):
    if not _TV_KEYS.exists() or name not in list_models():
        pytest.skip(f"{name} or the recorded torchvision keys are missing")
    from cnnkit.models import create_model

    state = _torchvision_state(name)
    # An old torchvision file has no num_batches_tracked (BatchNorm fills it in): drop them, as those files do.
    state = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    torch.save(state, tmp_path / f"{name}-tv.pth")
    model = create_model(name, num_classes=5)
    report = load_weights(model, tmp_path / f"{name}-tv.pth")
    assert sorted(report.skipped_classifier) == [f"{head}.bias", f"{head}.weight"]
    assert report.ok and len(report.loaded) == len(state) - 2
    assert all(torch.count_nonzero(model.state_dict()[k]) == 0 for k in report.loaded)  # the file's zeros

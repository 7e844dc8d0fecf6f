"""Batch norm folding and prepare_for_inference: outputs equal the plain model's on random inputs."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from cnnkit.errors import InputError
from cnnkit.ops.fold_bn import fold_batchnorms, fold_conv_bn, fold_linear_bn


def _random_bn(bn: nn.Module, seed: int = 0) -> nn.Module:
    """Batch norm with non-trivial statistics and affine parameters (a fresh one is the identity map)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        c = bn.num_features
        bn.running_mean.copy_(torch.randn(c, generator=g))
        bn.running_var.copy_(torch.rand(c, generator=g) * 2 + 0.1)
        if bn.affine:
            bn.weight.copy_(torch.randn(c, generator=g))
            bn.bias.copy_(torch.randn(c, generator=g))
    return bn.eval()


def _reference(conv, bn, x):
    """The obvious computation: convolution, then batch norm written out with its formula."""
    y = conv(x)
    shape = (1, -1) + (1,) * (y.dim() - 2)
    out = (y - bn.running_mean.view(shape)) / torch.sqrt(bn.running_var.view(shape) + bn.eps)
    if bn.affine:
        out = out * bn.weight.view(shape) + bn.bias.view(shape)
    return out


@pytest.mark.parametrize(
    "dims, groups, bias, affine, stride, dilation",
    [
        (2, 1, False, True, 1, 1),
        (2, 1, True, True, 2, 1),
        (2, 4, False, True, 1, 2),  # grouped
        (2, 8, True, False, 1, 1),  # depthwise, bn without affine
        (1, 2, True, True, 2, 1),
        (3, 1, False, True, 1, 1),
    ],
)
def test_fold_conv_bn_equals_conv_then_bn(dims, groups, bias, affine, stride, dilation):
    conv_cls = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}[dims]
    bn_cls = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d, 3: nn.BatchNorm3d}[dims]
    conv = conv_cls(8, 16, 3, stride=stride, padding=1, dilation=dilation, groups=groups, bias=bias)
    bn = _random_bn(bn_cls(16, affine=affine, eps=1e-3))
    x = torch.randn((2, 8) + (9,) * dims)
    fused = fold_conv_bn(conv, bn)
    with torch.no_grad():
        want = _reference(conv, bn, x)
        got = fused(x)
        assert not torch.allclose(conv(x), want, atol=1e-3)  # the batch norm does change the output
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    assert fused.bias is not None and fused is not conv
    assert conv.bias is None or conv.bias.shape == (16,)  # the original is left as it was
    assert (conv.bias is None) == (not bias)


def test_fold_linear_bn():
    lin, bn = nn.Linear(6, 5), _random_bn(nn.BatchNorm1d(5))
    x = torch.randn(4, 6)
    with torch.no_grad():
        torch.testing.assert_close(fold_linear_bn(lin, bn)(x), _reference(lin, bn, x), rtol=1e-5, atol=1e-5)


def test_fold_refuses_what_does_not_fit():
    with pytest.raises(InputError, match="channels"):
        fold_conv_bn(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(4))
    with pytest.raises(InputError, match="running statistics"):
        fold_conv_bn(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8, track_running_stats=False))
    with pytest.raises(InputError):
        fold_conv_bn(nn.Linear(3, 8), nn.BatchNorm2d(8))


class _Branchy(nn.Module):
    """A conv feeding a BN and something else (must not be folded), a shared conv, and a Sequential pair."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.conv_a = nn.Conv2d(8, 8, 3, padding=1)
        self.bn_a = nn.BatchNorm2d(8)
        self.conv_b = nn.Conv2d(8, 8, 1)
        self.bn_b = nn.BatchNorm2d(8)

    def forward(self, x):
        x = self.stem(x)
        a = self.conv_a(x)
        y = self.bn_a(a) + a  # conv_a's output is used twice: folding would change the second use
        return self.bn_b(self.conv_b(y))


def test_fold_batchnorms_in_a_model():
    model = _Branchy()
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            _random_bn(m, seed=m.num_features + len(list(model.modules())))
    model.eval()
    x = torch.randn(2, 3, 12, 12)
    with torch.no_grad():
        want = model(x)
        folded, n = fold_batchnorms(model)
        got = folded(x)
    assert n == 2
    assert isinstance(folded.stem[1], nn.Identity) and isinstance(folded.bn_b, nn.Identity)
    assert isinstance(folded.bn_a, nn.BatchNorm2d)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


# ------------------------------------------------------------------------------------------ prepare_for_inference

from cnnkit.models import create_model, list_models  # noqa: E402
from cnnkit.models.inference import BF16_RTOL, FP32_RTOL, prepare_for_inference  # noqa: E402


def _randomize_bns(model: nn.Module) -> nn.Module:
    """Random batch-norm statistics: a fresh BN is the identity, and folding it would prove nothing."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_mean is not None:
                c = m.num_features
                m.running_mean.copy_(torch.randn(c, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(c, generator=g) + 0.5)
                if m.affine:
                    m.weight.copy_(torch.rand(c, generator=g) + 0.5)
                    m.bias.copy_(torch.randn(c, generator=g) * 0.1)
    return model.eval()


def _small_input(model: nn.Module, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The smallest square input the model takes (32, 64 ... px, batch 1), and the plain model's output on it."""
    c, h, _ = getattr(model, "default_input_size", (3, 224, 224))
    for size in sorted({12, 24, 32, 48, 64, 128, h}):  # 12/24/48: MTCNN's P-, R- and O-Net
        x = torch.randn(1, c, size, size)
        try:
            with torch.no_grad():
                return x, model(x)
        except (RuntimeError, ValueError):  # too small for its pooling / fixed-size head / valid-padding U-Net
            continue
    raise AssertionError(f"{name} runs on no input size tried")


def _leaves(out) -> list[torch.Tensor]:
    """The float tensors of a model's output: one tensor, or several heads in tuples, lists and dicts (MTCNN's
    box deltas and probabilities, a detector's {boxes, scores, labels} per image)."""
    if isinstance(out, torch.Tensor):
        return [out] if out.is_floating_point() else []
    if isinstance(out, dict):
        return [t for k in sorted(out) for t in _leaves(out[k])]
    if isinstance(out, tuple | list):
        return [t for v in out for t in _leaves(v)]
    return []


def _rel_err(got, want) -> float:
    pairs = list(zip(_leaves(got), _leaves(want), strict=True))
    return max((((g - w).abs().max() / w.abs().max().clamp_min(1e-12)).item() if w.numel() else 0.0)
               for g, w in pairs) if pairs else 0.0


@pytest.mark.parametrize("name", list_models())
def test_prepared_equals_plain_for_every_model(name):
    model = _randomize_bns(create_model(name))
    x, want = _small_input(model, name)
    prepared = prepare_for_inference(model, backend="eager")
    got = prepared(x)
    for g, w in zip(_leaves(got), _leaves(want), strict=True):
        assert g.shape == w.shape and g.dtype == torch.float32
    assert _rel_err(got, want) < FP32_RTOL, f"{name}: relative error {_rel_err(got, want):.2e}"
    n_bn = sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
    left = sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in prepared.module.modules())
    assert prepared.folded == n_bn - left
    assert left <= n_bn // 4, f"{name}: only {prepared.folded} of {n_bn} batch norms folded"


_JIT_MODELS = [n for n in ("lenet5", "resnet18", "mobilenet_v2", "efficientnet_b0") if n in list_models()]


@pytest.mark.parametrize("name", _JIT_MODELS)
def test_prepared_jit_equals_plain(name):
    model = _randomize_bns(create_model(name))
    x, want = _small_input(model, name)
    x2 = torch.cat([x, torch.randn_like(x)])  # a second batch size: traced again, not reused wrongly
    with torch.no_grad():
        want2 = model(x2)
    prepared = prepare_for_inference(model, backend="jit")
    assert _rel_err(prepared(x), want) < FP32_RTOL
    assert _rel_err(prepared(x2), want2) < FP32_RTOL
    assert prepared.backend == "jit"


def test_prepared_jit_falls_back_when_onednn_rejects_a_shape():
    # oneDNN's adaptive pool (swapped in by optimize_for_inference) wants the output size to divide the input:
    # 1x1 -> 7x7 does not, as in VGG on small images. The plain frozen graph must then be used.
    model = nn.Sequential(nn.Conv2d(3, 4, 3, stride=2, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                          nn.AdaptiveAvgPool2d((7, 7)), nn.Flatten(), nn.Linear(196, 3))
    model = _randomize_bns(model)
    x = torch.randn(2, 3, 2, 2)
    with torch.no_grad():
        want = model(x)
    prepared = prepare_for_inference(model, backend="jit")
    assert _rel_err(prepared(x), want) < FP32_RTOL
    assert prepared.backend == "jit" and all(t is not None for t in prepared._traced.values())


class _SmallNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
                                      nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16), nn.ReLU6())
        self.fc = nn.Linear(16, 5)

    def forward(self, x):
        return self.fc(self.features(x).mean((2, 3)))


def test_prepared_compile_equals_plain():
    from cnnkit.models.inference import compile_available

    if not compile_available():
        pytest.skip("no C++ compiler for torch.compile")
    model = _randomize_bns(_SmallNet())
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        want = model(x)
    prepared = prepare_for_inference(model)  # auto: compile where a compiler exists
    got = prepared(x)
    assert prepared.backend == "compile"
    assert _rel_err(got, want) < FP32_RTOL
    from torch.profiler import profile

    with profile() as prof:
        prepared(x)
    ops = {e.key for e in prof.key_averages()}
    # Freezing must be on: convolutions become pre-packed oneDNN ops with the activation fused in.
    assert "mkldnn::_convolution_pointwise" in ops and "aten::convolution" not in ops, sorted(ops)


@pytest.mark.parametrize("backend", ["jit", "eager"])
def test_wrong_input_raises_and_keeps_the_backend(backend):
    prepared = prepare_for_inference(_randomize_bns(_SmallNet()), backend=backend)
    with pytest.raises(RuntimeError):
        prepared(torch.randn(2, 5, 16, 16))  # 5 channels, the model takes 3
    assert prepared.backend == backend and None not in prepared._traced.values()
    assert prepared(torch.randn(2, 3, 16, 16)).shape == (2, 5)
    with pytest.raises(InputError, match="one tensor"):
        prepared([torch.randn(2, 3, 16, 16)])


def test_prepare_leaves_the_model_alone_and_bf16_is_close():
    model = _randomize_bns(_SmallNet())
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(4, 3, 16, 16)
    with torch.no_grad():
        want = model(x)
    prepared = prepare_for_inference(model, "bf16", backend="eager")
    got = prepared(x)
    assert got.dtype == torch.float32
    assert 0 < _rel_err(got, want) < BF16_RTOL  # bf16 does round: an exact match would mean it was not used
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert isinstance(model.features[1], nn.BatchNorm2d)
    with pytest.raises(InputError, match="precision"):
        prepare_for_inference(model, "fp16")
    with pytest.raises(InputError, match="backend"):
        prepare_for_inference(model, backend="tensorrt")


# ------------------------------------------------------------------------------------------------ cnnkit bench

_needs_lenet = pytest.mark.skipif("lenet5" not in list_models(), reason="lenet5 not registered yet")


@_needs_lenet
def test_bench_cli_json(run_cli):
    import json

    pytest.importorskip("onnxruntime")
    code, out, _ = run_cli("bench", "lenet5", "--batch", "2", "--rounds", "2", "--variants", "eager,folded,jit,onnx",
                           "--json")
    assert code == 0
    result = json.loads(out)
    assert result["model"] == "lenet5" and result["batch"] == 2 and result["input_shape"] == [1, 32, 32]
    assert result["macs_per_image"] > 0 and result["peak_flops"] > 0
    assert set(result["variants"]) == {"eager", "folded", "jit", "onnx"}
    for name, v in result["variants"].items():
        assert v["images_per_s"] > 0 and len(v["timings_s"]) == 2, name
        assert v["rel_error"] < FP32_RTOL and v["top1_agreement"] == 1.0, name
        assert v["gflops"] == pytest.approx(2 * result["macs_per_image"] * v["images_per_s"] / 1e9)
    assert result["ratios"]["onnx_over_eager"] == pytest.approx(
        result["variants"]["onnx"]["images_per_s"] / result["variants"]["eager"]["images_per_s"])


@_needs_lenet
def test_bench_cli_without_onnx_still_benches_the_others(run_cli, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    code, out, err = run_cli("bench", "lenet5", "--batch", "1", "--rounds", "1", "--variants", "eager,jit,onnx")
    assert code == 0
    assert "install cnnkit[onnx]" in err
    assert "plain eager" in out and "prepared fp32, jit backend" in out and "ONNX Runtime  " not in out


def test_bench_cli_bad_variant(run_cli):
    code, _, err = run_cli("bench", "lenet5", "--variants", "eager,tensorrt")
    assert code == 2 and "tensorrt" in err


# --------------------------------------------------------------------------------------------- tour section


def test_tour_section_quick(tmp_path):
    from cnnkit.tour import run_tour

    index, failed = run_tour(tmp_path, only=["s040_models"], quick=True)
    assert failed == []
    page = index.read_text()
    assert (tmp_path / "the-architecture-zoo-size-and-cost.png").stat().st_size > 10_000
    for name in list_models():  # every classifier has its row; detectors, U-Nets and face nets have their sections
        with torch.device("meta"):
            task = getattr(create_model(name), "task", "classification")
        assert (f"<td>{name}</td>" in page) == (task == "classification"), name
    if "lenet5" in list_models():
        assert "LeNet-5, layer by layer" in page

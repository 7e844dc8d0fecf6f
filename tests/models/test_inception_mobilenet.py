"""GoogLeNet, MobileNet v1/v2, EfficientNet-B0 and their layers: counts, published costs, and slow references."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from cnnkit.errors import InputError
from cnnkit.layers.depthwise import DepthwiseSeparableConv, separable_cost_ratio
from cnnkit.layers.inception import InceptionModule
from cnnkit.layers.inverted_residual import InvertedResidual, MBConv, make_divisible, stochastic_depth
from cnnkit.layers.squeeze_excite import SqueezeExcitation
from cnnkit.models import create_model
from cnnkit.models.googlenet import _INCEPTION_CFG, GoogLeNetOutputs
from cnnkit.summary import summary

TORCHVISION_JSON = Path(__file__).parent / "data" / "torchvision_state_dicts.json"
FAMILY = ["googlenet", "mobilenet_v1", "mobilenet_v2", "efficientnet_b0"]




def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def meta_model(name: str, **kwargs) -> nn.Module:
    """The model on the meta device: shapes only, no memory and no initialisation work."""
    with torch.device("meta"):
        return create_model(name, **kwargs)


def macs_224(name: str, **kwargs) -> int:
    return summary(meta_model(name, **kwargs), (3, 224, 224)).total_macs  # counted without computing anything


# ---------------------------------------------------------------------------------------------------------------
# Parameter counts and multiply-adds


@pytest.mark.parametrize("name, kwargs, expected", [
    ("googlenet", {}, 6_624_904),
    ("googlenet", {"aux_logits": True}, 13_004_888),
    ("mobilenet_v1", {}, 4_231_976),
    ("mobilenet_v2", {}, 3_504_872),
    ("efficientnet_b0", {}, 5_288_548),
])
def test_published_parameter_counts(name, kwargs, expected):
    assert n_params(meta_model(name, **kwargs)) == expected


def test_googlenet_paper_5x5_adds_exactly_the_larger_kernels():
    # each "5x5" conv of red -> out channels grows from 9 * red * out to 25 * red * out weights
    extra = sum(16 * cfg[4] * cfg[5] for cfg in _INCEPTION_CFG.values())
    assert n_params(meta_model("googlenet", paper_5x5=True)) == 6_624_904 + extra


def test_make_divisible_rounds_like_the_reference():
    assert [make_divisible(v) for v in (32 * 0.35, 16 * 0.35, 24 * 0.35, 32 * 0.75, 1280 * 1.4, 96 * 0.5)] == \
        [16, 8, 8, 24, 1792, 48]
    assert make_divisible(20) == 24 and make_divisible(19) == 24 and make_divisible(11) == 16


def _v1_params(alpha: float, num_classes: int = 1000) -> int:
    """Paper Table 1 counted by hand: every conv without bias is followed by a BN (2 parameters per channel)."""
    c = make_divisible(32 * alpha)
    total = 3 * 9 * c + 2 * c
    for out, _ in [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2)] + [(512, 1)] * 5 + [(1024, 2), (1024, 1)]:
        out = make_divisible(out * alpha)
        total += (9 * c + 2 * c) + (c * out + 2 * out)  # depthwise 3x3 + BN, pointwise 1x1 + BN
        c = out
    return total + c * num_classes + num_classes


def _v2_params(width: float, num_classes: int = 1000) -> int:
    """Paper Table 2 counted by hand."""
    c = make_divisible(32 * width)
    last = make_divisible(1280 * max(1.0, width))
    total = 3 * 9 * c + 2 * c
    for t, out, n, _ in [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
                         (6, 320, 1, 1)]:
        out = make_divisible(out * width)
        for _ in range(n):
            h = c * t
            total += (c * h + 2 * h if t != 1 else 0) + (9 * h + 2 * h) + (h * out + 2 * out)
            c = out
    return total + c * last + 2 * last + last * num_classes + num_classes


@pytest.mark.parametrize("alpha", [0.25, 0.5, 0.75, 1.0])
def test_mobilenet_v1_width_multiplier_counts(alpha):
    assert n_params(meta_model("mobilenet_v1", width_mult=alpha)) == _v1_params(alpha)
    assert n_params(meta_model("mobilenet_v1", width_mult=alpha, num_classes=10)) == _v1_params(alpha, 10)


@pytest.mark.parametrize("width", [0.35, 0.5, 0.75, 1.0, 1.4])
def test_mobilenet_v2_width_multiplier_counts(width):
    assert n_params(meta_model("mobilenet_v2", width_mult=width)) == _v2_params(width)


@pytest.mark.parametrize("name, kwargs, published", [
    ("googlenet", {}, 1.498e9),  # torchvision's figure (auxiliary heads do not run in evaluation)
    ("googlenet", {"aux_logits": True}, 1.498e9),
    ("mobilenet_v1", {}, 569e6),  # paper, Table 6 (width 1.0, 0.75, 0.5, 0.25)
    ("mobilenet_v1", {"width_mult": 0.75}, 325e6),
    ("mobilenet_v1", {"width_mult": 0.5}, 149e6),
    ("mobilenet_v1", {"width_mult": 0.25}, 41e6),
    ("mobilenet_v2", {}, 0.301e9),  # torchvision; the widths below: TF-slim's MobileNet v2 table
    ("mobilenet_v2", {"width_mult": 1.4}, 582e6),
    ("mobilenet_v2", {"width_mult": 0.5}, 97e6),
    ("efficientnet_b0", {}, 0.386e9),  # torchvision; paper 0.39e9
])
def test_multiply_adds_match_published(name, kwargs, published):
    assert macs_224(name, **kwargs) == pytest.approx(published, rel=0.01)


# ---------------------------------------------------------------------------------------------------------------
# torchvision compatibility


@pytest.mark.skipif(not TORCHVISION_JSON.exists(), reason="torchvision key recording not present")
@pytest.mark.parametrize("recorded, name, kwargs", [
    ("googlenet", "googlenet", {}),
    ("googlenet_aux", "googlenet", {"aux_logits": True}),
    ("mobilenet_v2", "mobilenet_v2", {}),
    ("efficientnet_b0", "efficientnet_b0", {}),
])
def test_state_dict_keys_and_shapes_equal_torchvision(recorded, name, kwargs):
    expected = json.loads(TORCHVISION_JSON.read_text())[recorded]
    ours = [[k, list(v.shape)] for k, v in meta_model(name, **kwargs).state_dict().items()]
    assert {k for k, _ in ours} ^ {k for k, _ in expected} == set()
    assert ours == expected  # same shapes, and the same order


# ---------------------------------------------------------------------------------------------------------------
# Layers against slow, obvious references


@pytest.mark.parametrize("cfg", [(192, 64, 96, 128, 16, 32, 32), (10, 3, 4, 5, 2, 7, 6), (8, 1, 1, 1, 1, 1, 1)])
@pytest.mark.parametrize("k5", [3, 5])
def test_inception_module_concatenates_branches_and_keeps_size(cfg, k5):
    m = InceptionModule(*cfg, branch3_kernel_size=k5).eval()
    x = torch.randn(2, cfg[0], 7, 9)
    y = m(x)
    in_ch, ch1, _, ch3, _, ch5, pool = cfg
    assert m.out_channels == ch1 + ch3 + ch5 + pool
    assert y.shape == (2, ch1 + ch3 + ch5 + pool, 7, 9)
    # the channels are the branches, in order
    torch.testing.assert_close(y, torch.cat([m.branch1(x), m.branch2(x), m.branch3(x), m.branch4(x)], 1))
    assert m.branch3[1].conv.kernel_size == (k5, k5)


def _per_channel_conv(x, w, b, stride):
    """Depthwise convolution the long way: one ordinary single-channel convolution per input channel."""
    pad = w.shape[-1] // 2
    return torch.cat([F.conv2d(x[:, c:c + 1], w[c:c + 1], None if b is None else b[c:c + 1], stride, pad)
                      for c in range(x.shape[1])], 1)  # (B, C, H', W')


def _pointwise(x, w, b):
    """1x1 convolution the long way: a matrix product over channels at every pixel."""
    out = torch.einsum("oc,bchw->bohw", w[:, :, 0, 0], x)
    return out if b is None else out + b[None, :, None, None]


def _bn_eval(t, bn):
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    return (t - bn.running_mean[None, :, None, None]) * scale[None, :, None, None] + bn.bias[None, :, None, None]


@pytest.mark.parametrize("stride, k", [(1, 3), (2, 3), (1, 5), (2, 5)])
def test_depthwise_separable_equals_per_channel_conv_then_pointwise(stride, k):
    x = torch.randn(3, 6, 13, 10, dtype=torch.float64)
    m = DepthwiseSeparableConv(6, 11, stride=stride, kernel_size=k, norm_layer=None, act_layer=None).double()
    dw, pw = m.depthwise[0], m.pointwise[0]
    assert dw.groups == 6 and dw.weight.shape == (6, 1, k, k)
    expected = _pointwise(_per_channel_conv(x, dw.weight, dw.bias, stride), pw.weight, pw.bias)
    torch.testing.assert_close(m(x), expected)

    # the default BN + ReLU after each convolution, in evaluation mode with non-trivial statistics
    m = DepthwiseSeparableConv(6, 11, stride=stride, kernel_size=k).double().eval()
    dw, dw_bn, pw, pw_bn = m.depthwise[0], m.depthwise[1], m.pointwise[0], m.pointwise[1]
    for bn in (dw_bn, pw_bn):
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
        nn.init.uniform_(bn.weight, 0.5, 2)
        nn.init.uniform_(bn.bias, -1, 1)
    with torch.no_grad():
        d = torch.relu(_bn_eval(_per_channel_conv(x, dw.weight, None, stride), dw_bn))
        expected = torch.relu(_bn_eval(_pointwise(d, pw.weight, None), pw_bn))
        torch.testing.assert_close(m(x), expected)


@pytest.mark.parametrize("n_in, n_out, f", [(32, 64, 3), (16, 24, 3), (64, 128, 5), (8, 256, 7)])
def test_depthwise_separable_cost_ratio(n_in, n_out, f):
    sep = summary(DepthwiseSeparableConv(n_in, n_out, kernel_size=f), (n_in, 20, 20)).total_macs
    std = summary(nn.Conv2d(n_in, n_out, f, padding=f // 2), (n_in, 20, 20)).total_macs
    assert sep / std == pytest.approx(1 / n_out + 1 / f**2, rel=1e-12)
    assert separable_cost_ratio(n_out, f) == pytest.approx(sep / std, rel=1e-12)


def _zero_last_bn(block: nn.Module) -> None:
    bn = [m for m in block.modules() if isinstance(m, nn.BatchNorm2d)][-1]
    nn.init.zeros_(bn.weight)
    nn.init.zeros_(bn.bias)


@pytest.mark.parametrize("make", [
    lambda i, o, s: InvertedResidual(i, o, s, expand_ratio=6),
    lambda i, o, s: InvertedResidual(i, o, s, expand_ratio=1),
    lambda i, o, s: MBConv(i, o, 3, s, expand_ratio=6, stochastic_depth_prob=0.5),
    lambda i, o, s: MBConv(i, o, 5, s, expand_ratio=1),
])
@pytest.mark.parametrize("n_in, n_out, stride, residual", [
    (16, 16, 1, True), (16, 24, 1, False), (16, 16, 2, False), (16, 24, 2, False),
])
def test_inverted_residual_adds_skip_only_at_stride_1_with_equal_channels(make, n_in, n_out, stride, residual):
    block = make(n_in, n_out, stride).eval()
    x = torch.randn(2, n_in, 12, 12)
    assert block(x).shape == (2, n_out, 12 // stride, 12 // stride)
    assert block.use_res_connect is residual
    # a zeroed last BN silences the branch: what is left is the skip connection, or nothing
    _zero_last_bn(block)
    y = block(x)
    torch.testing.assert_close(y, x if residual else torch.zeros_like(y))


def test_mbconv_stochastic_depth_drops_the_branch_in_training_only():
    block = MBConv(16, 16, 3, 1, expand_ratio=4, stochastic_depth_prob=1.0)
    x = torch.randn(2, 16, 8, 8)
    torch.testing.assert_close(block.train()(x), x)  # branch always dropped: identity
    assert not torch.allclose(block.eval()(x), x)


def test_stochastic_depth_keeps_or_scales_whole_samples():
    x = torch.randn(400, 3, 2, 2) + 5
    y = stochastic_depth(x, 0.25, training=True)
    ratio = (y / x).flatten(1)
    kept = ratio[:, 0] > 0
    torch.testing.assert_close(ratio[kept], torch.full_like(ratio[kept], 1 / 0.75))
    assert (ratio[~kept] == 0).all()
    assert 0.6 < kept.float().mean() < 0.9
    assert stochastic_depth(x, 0.25, training=False) is x
    with pytest.raises(InputError):
        stochastic_depth(x, 1.5)


def test_squeeze_excitation_equals_explicit_formula():
    se = SqueezeExcitation(12, 3).double()
    x = torch.randn(2, 12, 5, 7, dtype=torch.float64)
    w1, b1 = se.fc1.weight[:, :, 0, 0], se.fc1.bias
    w2, b2 = se.fc2.weight[:, :, 0, 0], se.fc2.bias
    mean = x.mean(dim=(2, 3))  # (B, C)
    gate = torch.sigmoid(torch.relu(mean @ w1.T + b1) @ w2.T + b2)
    torch.testing.assert_close(se(x), x * gate[:, :, None, None])


# ---------------------------------------------------------------------------------------------------------------
# Backbone contract on small inputs


@pytest.mark.parametrize("name", FAMILY)
def test_stages_at_strides_2_to_32(name):
    model = create_model(name, num_classes=7).eval()
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        stages = model.forward_stages(x)
        assert [s.shape for s in stages] == [(1, c, 64 // 2**i, 96 // 2**i)
                                             for i, c in enumerate(model.stage_channels, 1)]
        assert model.out_channels == model.stage_channels and model.stage_channels[-1] == model.num_features
        feats = model.forward_features(x)
        torch.testing.assert_close(feats, stages[-1])
        torch.testing.assert_close(model(x), model.forward_head(feats))
        assert model.forward_head(feats, pre_logits=True).shape == (1, model.num_features)
    assert model.get_classifier().out_features == 7
    model.reset_classifier(3)
    assert model(x).shape == (1, 3)
    model.reset_classifier(0)
    assert model(x).shape == (1, model.num_features)


@pytest.mark.parametrize("name", FAMILY)
def test_one_channel_input_and_backward(name):
    model = create_model(name, num_classes=4, in_chans=1).train()
    out = model(torch.randn(2, 1, 64, 64))
    assert out.shape == (2, 4)
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_googlenet_aux_heads_in_training_only():
    model = create_model("googlenet", num_classes=5, aux_logits=True)
    x = torch.randn(2, 3, 64, 64)
    out = model.train()(x)
    assert isinstance(out, GoogLeNetOutputs)
    assert [t.shape for t in out] == [(2, 5)] * 3
    (out.logits + 0.3 * (out.aux_logits1 + out.aux_logits2)).sum().backward()
    assert model.aux1.fc2.weight.grad is not None and model.aux2.conv.conv.weight.grad is not None
    with torch.no_grad():
        assert model.eval()(x).shape == (2, 5)
    model.reset_classifier(9)
    assert [t.shape for t in model.train()(x)] == [(2, 9)] * 3


@pytest.mark.parametrize("call", [
    lambda: create_model("mobilenet_v2", width_mult=0),
    lambda: create_model("mobilenet_v1", width_mult=-1),
    lambda: create_model("efficientnet_b0", depth_mult=0),
    lambda: create_model("googlenet", no_such_option=1),
    lambda: InvertedResidual(8, 8, 3, 6),
    lambda: MBConv(8, 8, 3, 4, 6),
])
def test_bad_configuration_raises_input_error(call):
    with pytest.raises(InputError):
        call()


def test_googlenet_loads_a_checkpoint_with_aux_heads_and_drops_them(tmp_path, caplog):
    # torchvision's googlenet checkpoint holds aux1/aux2 (our aux model has its exact keys, see above)
    source = create_model("googlenet", aux_logits=True)
    path = tmp_path / "googlenet.pth"
    torch.save(source.state_dict(), path)
    with caplog.at_level("WARNING", logger="cnnkit.weights"):
        model = create_model("googlenet", weights=str(path))
    assert not caplog.records  # nothing unexpected, nothing missing
    assert model.aux1 is None and model.aux2 is None and n_params(model) == 6_624_904
    torch.testing.assert_close(model.inception5b.branch3[1].conv.weight, source.inception5b.branch3[1].conv.weight)
    with_aux = create_model("googlenet", weights=str(path), aux_logits=True)
    torch.testing.assert_close(with_aux.aux2.fc1.weight, source.aux2.fc1.weight)

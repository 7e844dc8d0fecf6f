"""U-Net family: exact parameter counts (hand-counted here), shapes for valid and same padding, the course's
Keras conventions, the skip-free twin, backbone U-Nets."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn

from cnnkit.errors import InputError
from cnnkit.models import create_model, list_models
from cnnkit.models.unet import BackboneUNet, UpConv, unet_from_backbone


def _n(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _meta(name: str, **kw) -> nn.Module:
    with torch.device("meta"):
        return create_model(name, **kw)


def _conv(cin, cout, k):  # weights + biases of a k x k convolution
    return cin * cout * k * k + cout


def _hand_count(in_ch, widths, n_classes, up_k, final_conv=False, skips=True):
    """Count a plain U-Net by hand: encoder double convs, up-convs halving channels, decoder double convs."""
    total, c = 0, in_ch
    for w in widths:
        total += _conv(c, w, 3) + _conv(w, w, 3)
        c = w
    for w in reversed(widths[:-1]):
        total += _conv(c, w, up_k)  # transposed convolution: same count as a convolution
        total += _conv(2 * w if skips else w, w, 3) + _conv(w, w, 3)
        c = w
    if final_conv:
        total += _conv(c, c, 3)
    return total + _conv(c, n_classes, 1)


def test_paper_unet_parameter_count_and_shapes():
    model = _meta("unet")
    expected = _hand_count(1, [64, 128, 256, 512, 1024], 2, up_k=2)
    assert expected == 31_030_658
    assert _n(model) == expected
    out = model(torch.empty(1, 1, 572, 572, device="meta"))
    assert out.shape == (1, 2, 388, 388)  # the paper's Figure 1
    assert model.size_rule.margin == 92


def test_course_unet_parameter_count_and_layout():
    model = _meta("unet_course")
    assert _hand_count(3, [32, 64, 128, 256, 512], 23, up_k=3, final_conv=True) == 8_640_471  # Keras summary
    assert _n(model) == 8_640_471
    assert model.default_input_size == (3, 96, 128)
    assert model(torch.empty(2, 3, 96, 128, device="meta")).shape == (2, 23, 96, 128)
    drops = [m.p for m in model.modules() if isinstance(m, nn.Dropout)]
    assert drops == [0.3, 0.3]  # the two deepest encoder blocks
    assert isinstance(model.down[3][-1], nn.Dropout) and isinstance(model.down[4][-1], nn.Dropout)
    ups = [m.up for m in model.up]
    assert all(u.kernel_size == (3, 3) and u.stride == (2, 2) for u in ups)


def test_keras_same_transposed_convolution_matches_scratch():
    """Keras' 3x3 stride-2 "same" transposed convolution keeps the first 2n of the 2n + 1 rows: the NumPy reference
    with pad 0, cropped at the end, must agree with UpConv."""
    from cnnkit.scratch import conv_transpose_forward

    up = UpConv(2, 3, kernel_size=3)
    x = torch.randn(1, 2, 4, 5)
    with torch.no_grad():
        ours = up(x).numpy()
    W = up.up.weight.detach().numpy().transpose(2, 3, 0, 1)  # (in, out, k, k) -> (k, k, in, out)
    b = up.up.bias.detach().numpy().reshape(1, 1, 1, 3)
    Z, _ = conv_transpose_forward(x.numpy().transpose(0, 2, 3, 1), W, b, {"stride": 2, "pad": 0})
    assert Z.shape == (1, 9, 11, 3)
    np.testing.assert_allclose(ours, Z[:, :8, :10].transpose(0, 3, 1, 2), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("size", [(64, 64), (96, 128), (50, 37), (17, 100), (1, 1)])
def test_same_padding_output_size_equals_input(size):
    model = create_model("unet_small", num_classes=4, base_width=4).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, *size))
    assert out.shape == (1, 4, *size)


@pytest.mark.parametrize("name", ["unet_course", "unet"])
def test_same_padding_any_size(name):
    kw = {"padding": "same", "base_width": 4} if name == "unet" else {"n_filters": 4}
    model = create_model(name, **kw).eval()
    c = model.in_chans
    with torch.no_grad():
        for size in [(96, 128), (45, 77)]:
            assert model(torch.randn(1, c, *size)).shape[-2:] == size


def test_valid_padding_rejects_bad_size_with_a_hint():
    model = create_model("unet", base_width=2)
    with pytest.raises(InputError, match="572|valid"):
        model(torch.randn(1, 1, 100, 100))
    assert model(torch.randn(1, 1, 572, 572)).shape == (1, 2, 388, 388)


def test_noskip_twin_is_the_same_network_without_skips():
    skip, noskip = _meta("unet_small"), _meta("unet_small_noskip")
    widths = [8, 16, 32, 64, 128]
    assert _n(skip) == _hand_count(3, widths, 5, 2) + sum(2 * w for w in widths) + sum(2 * w for w in widths[:-1])
    # BatchNorm adds 2 per channel to each conv; the no-skip decoder's first convs lose the skip's input channels
    assert _n(skip) - _n(noskip) == sum(w * w * 9 for w in widths[:-1])


def test_skips_carry_detail():
    """Zeroing the deepest block's output leaves the skip model an output that depends on the input; without
    skips the decoder then sees nothing of the image."""
    torch.manual_seed(0)
    for name, depends in [("unet_small", True), ("unet_small_noskip", False)]:
        model = create_model(name, base_width=4).eval()
        model.down[-1].register_forward_hook(lambda *_: torch.zeros(1, 64, 4, 4))
        with torch.no_grad():
            a, b = model(torch.randn(1, 3, 64, 64)), model(torch.randn(1, 3, 64, 64))
        assert (not torch.allclose(a, b)) == depends, name


@pytest.mark.parametrize("name", ["unet_resnet18", "segnet_vgg16_noskip"])
def test_backbone_unets(name):
    torch.manual_seed(0)
    model = create_model(name, num_classes=3)
    assert model.task == "segmentation"
    model.train()
    x = torch.randn(2, 3, 64, 48)
    out = model(x)
    assert out.shape == (2, 3, 64, 48)
    out.mean().backward()
    assert all(p.grad is not None for p in model.parameters())  # the head was pruned: nothing unused is left
    with torch.no_grad():
        assert model.eval()(torch.randn(1, 3, 45, 70)).shape == (1, 3, 45, 70)


def test_backbone_unet_prunes_head_and_keeps_encoder_keys():
    model = _meta("unet_vgg16")
    keys = model.state_dict().keys()
    assert "encoder.features.0.weight" in keys and not any(k.startswith("encoder.classifier") for k in keys)
    enc = sum(p.numel() for n, p in model.named_parameters() if n.startswith("encoder."))
    assert enc == 14_714_688  # VGG-16's 13 convolutions
    noskip = _meta("segnet_vgg16_noskip")
    dec = [256, 128, 64, 32, 16]
    chans = [64, 128, 256, 512, 512]
    expected = enc
    c = 512
    for d in dec:
        expected += _conv(c, d, 2) + _conv(d, d, 3) + _conv(d, d, 3) - 2 * d + 4 * d  # no conv bias, BN instead
        c = d
    assert _n(noskip) == expected + _conv(16, 5, 1)
    skip_extra = sum(chans[3 - i] * dec[i] * 9 for i in range(4))
    assert _n(model) - _n(noskip) == skip_extra


def test_generic_backbone_unet_bilinear():
    model = unet_from_backbone("resnet18", num_classes=2, upsample="bilinear")
    assert isinstance(model, BackboneUNet)
    assert not any(isinstance(m, nn.ConvTranspose2d) for m in model.modules())
    assert model.eval()(torch.randn(1, 3, 64, 64)).shape == (1, 2, 64, 64)


def test_registered_names():
    names = set(list_models("unet*")) | set(list_models("segnet*"))
    assert {"unet", "unet_course", "unet_small", "unet_small_noskip", "unet_resnet18", "segnet_vgg16_noskip"} <= names
    for name in names:
        assert _meta(name).task == "segmentation"


def _segmentation_models() -> list[str]:
    import typing

    from cnnkit.models import get_model_builder

    out = []
    for name in list_models():
        try:
            cls = typing.get_type_hints(get_model_builder(name)).get("return")
        except Exception:
            continue
        if getattr(cls, "task", None) == "segmentation":
            out.append(name)
    return out


@pytest.mark.parametrize("name", _segmentation_models())
def test_every_segmentation_model_forward_backward(name):
    """Registry-driven: every segmentation model maps a small batch to (B, K, H', W') finite scores and every
    parameter gets a finite gradient."""
    torch.manual_seed(0)
    kw = {"base_width": 8} if name == "unet" else {}
    model = create_model(name, num_classes=3, **kw).train()
    rule = model.size_rule
    side = rule.input_size(rule.output_size_for(40))
    x = torch.randn(2, model.in_chans, side, side)
    out = model(x)
    assert out.shape == (2, 3, side - 2 * rule.margin, side - 2 * rule.margin)
    assert torch.isfinite(out).all()
    F = torch.nn.functional
    F.cross_entropy(out, torch.randint(0, 3, out.shape[:1] + out.shape[2:])).backward()
    bad = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not bad, bad[:5]

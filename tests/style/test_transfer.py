"""The style-transfer optimisation on a tiny network: costs fall, seeds repeat, inputs are checked and reported."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cnnkit.errors import InputError, UnknownNameError
from cnnkit.style.features import FeatureExtractor, InputNorm
from cnnkit.style.transfer import StyleConfig, _Loss, rgb_to_yiq, style_transfer, yiq_to_rgb


def images(seed=0, size=(24, 24)):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size[0], 0:size[1]]
    content = np.stack([yy / size[0], xx / size[1], 0.5 + 0 * yy], -1).astype(np.float32)  # smooth ramps
    style = (rng.random((size[0] * 2, size[1] * 2, 3)) > 0.5).astype(np.float32) * [0.9, 0.2, 0.1]  # red speckle
    return content, style.astype(np.float32)


def config(**kw):
    base = dict(size=24, steps=12, content_layer="relu2_1", style_layers=("relu1_1", "relu2_1"), lr=0.05,
                channels_last=False, bf16=False)
    base.update(kw)
    return StyleConfig(**base)


def test_costs_fall_and_output_is_an_image(tiny_vgg):
    content, style = images()
    r = style_transfer(content, [style], config(), network=(tiny_vgg, InputNorm()))
    assert r.image.shape == (24, 24, 3) and r.image.dtype == np.float32
    assert 0 <= r.image.min() and r.image.max() <= 1
    assert len(r.history) == 12 and r.history[0]["content"] == 0.0  # starts from the content image
    assert r.history[-1]["style"] < 0.5 * r.history[0]["style"]
    assert r.history[-1]["total"] < r.history[0]["total"]
    assert any("style image 1 resized from 48x48 to 24x24" in n for n in r.notes)


def test_same_seed_same_image_other_seed_other_image(tiny_vgg):
    content, style = images()
    net = (tiny_vgg, InputNorm())
    a = style_transfer(content, [style], config(init="noise", seed=3, steps=4), network=net).image
    b = style_transfer(content, [style], config(init="noise", seed=3, steps=4), network=net).image
    c = style_transfer(content, [style], config(init="noise", seed=4, steps=4), network=net).image
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).max() > 0.05


def test_content_plus_noise_mixes_in_the_course_ratio(tiny_vgg):
    from cnnkit.style.transfer import _initial

    content = torch.full((1, 3, 8, 8), 0.5)
    x = _initial(config(init="content+noise"), content, torch.Generator().manual_seed(0))
    # 0.6 * (content + noise in [-20, 20] / 255) + 0.4 * content = content + 0.6 * noise
    assert (x - content).abs().max() <= 0.6 * 20 / 255 + 1e-6
    assert (x - content).abs().max() > 0.5 * 0.6 * 20 / 255


def test_grayscale_content_is_converted_and_said(tiny_vgg):
    content, style = images()
    r = style_transfer((content[:, :, 0] * 255).astype(np.uint8), [style], config(steps=1),
                       network=(tiny_vgg, InputNorm()))
    assert any("content image is grayscale: converted" in n for n in r.notes)


def test_unknown_layer_and_small_size_are_one_line(tiny_vgg):
    content, style = images()
    with pytest.raises(UnknownNameError, match="available: .*relu1_1"):
        style_transfer(content, [style], config(content_layer="conv7_1"), network=(tiny_vgg, InputNorm()))
    with pytest.raises(InputError, match="too small") as e:
        style_transfer(content, [style], config(size=3, style_layers=("pool2",)), network=(tiny_vgg, InputNorm()))
    assert "\n" not in str(e.value)
    with pytest.raises(InputError, match="style weight"):
        style_transfer(content, [style, style], config(style_weights=(1.0,)), network=(tiny_vgg, InputNorm()))
    with pytest.raises(InputError, match="init"):
        style_transfer(content, [style], config(init="zeros"), network=(tiny_vgg, InputNorm()))


def test_preserve_colors_keeps_the_content_chroma(tiny_vgg):
    content, style = images()
    r = style_transfer(content, [style], config(preserve_colors=True), network=(tiny_vgg, InputNorm()))
    got = rgb_to_yiq(torch.from_numpy(r.image).permute(2, 0, 1)[None])
    want = rgb_to_yiq(torch.from_numpy(content).permute(2, 0, 1)[None])
    out = torch.from_numpy(r.image).permute(2, 0, 1)[None]
    inside = ((out > 0.01) & (out < 0.99)).all(1, keepdim=True)  # clipping to [0, 1] changes the chroma there
    torch.testing.assert_close(got[:, 1:][inside.expand(-1, 2, -1, -1)], want[:, 1:][inside.expand(-1, 2, -1, -1)],
                               atol=2e-3, rtol=0)
    assert any("colours preserved" in n for n in r.notes)
    x = torch.rand(1, 3, 4, 4)
    torch.testing.assert_close(yiq_to_rgb(rgb_to_yiq(x)), x)


def test_lbfgs_frames_and_several_styles(tiny_vgg):
    content, style = images()
    other = np.full((30, 20, 3), [0.1, 0.3, 0.9], np.float32)
    seen = []
    r = style_transfer(content, [style, other], config(optimizer="lbfgs", steps=10, frames_every=5,
                                                        style_weights=(3, 1)),
                       network=(tiny_vgg, InputNorm()), frame_callback=lambda s, f: seen.append(s))
    assert seen == [5, 10] and [s for s, _ in r.frames] == [5, 10, 10]
    assert r.history[-1]["total"] < r.history[0]["total"]


def test_multiscale_runs_coarse_to_fine(tiny_vgg):
    content, style = images(size=(40, 40))
    r = style_transfer(content, [style], config(size=40, max_single_scale=20, steps=4, scale_steps=0.5),
                       network=(tiny_vgg, InputNorm()))
    assert [h["scale"] for h in r.history] == [20] * 4 + [40] * 2
    assert r.image.shape == (40, 40, 3) and set(r.seconds_per_step) == {20, 40}


def test_tiled_gradient_equals_the_whole_image_gradient(tiny_vgg):
    torch.manual_seed(0)
    cfg = config(content_layer="relu2_2", style_layers=("relu1_1", "relu2_2"), tv_weight=0.5, tile_exact=True)
    fe = FeatureExtractor(tiny_vgg, ["relu2_2", "relu1_1"], InputNorm())
    content, style = torch.rand(1, 3, 40, 48), torch.rand(1, 3, 32, 32)
    strides = {"relu1_1": 1, "relu2_2": 2}  # relu2_2 sits after one 2x2 pool
    # the receptive field of relu2_2 is 10 (radius 4.5): a halo of 6 (a multiple of the stride) sees all of it
    whole = _Loss(fe, cfg, content, [style], [1.0], None, strides, 6)
    tiled = _Loss(fe, cfg, content, [style], [1.0], 16, strides, 6)
    for name in whole.G_S:
        torch.testing.assert_close(tiled.G_S[name], whole.G_S[name], rtol=1e-4, atol=1e-3)
    torch.testing.assert_close(tiled.a_C, whole.a_C)
    x1 = torch.rand(1, 3, 40, 48, requires_grad=True)
    x2 = x1.detach().clone().requires_grad_(True)
    v1, v2 = whole.value_and_grad(x1), tiled.value_and_grad(x2)
    for k in v1:
        assert v2[k] == pytest.approx(v1[k], rel=1e-4)
    torch.testing.assert_close(x2.grad, x1.grad, rtol=1e-3, atol=1e-6)
    # the default reuses the previous step's Gram matrices: at the same x it is the same gradient
    cfg.tile_exact = False
    x3 = x1.detach().clone().requires_grad_(True)
    tiled.value_and_grad(x3)
    x3.grad = None
    tiled.value_and_grad(x3)
    torch.testing.assert_close(x3.grad, x1.grad, rtol=1e-3, atol=1e-6)
    assert len(list(tiled._tiles(40, 48))) == 9  # 40 -> 3 tiles of 14 (rounded up to 2s); 48 -> 3 of 16


def test_bf16_runs_close_to_fp32(tiny_vgg):
    content, style = images()
    net = (tiny_vgg, InputNorm())
    a = style_transfer(content, [style], config(steps=3), network=net)
    b = style_transfer(content, [style], config(steps=3, bf16=True, channels_last=True), network=net)
    assert b.history[0]["style"] == pytest.approx(a.history[0]["style"], rel=0.05)
    assert np.abs(a.image - b.image).mean() < 0.02

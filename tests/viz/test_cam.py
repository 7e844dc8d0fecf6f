"""Grad-CAM and saliency against a case computed by hand: a 1x1 convolution, global average pooling, a Linear."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn

from cnnkit.errors import InputError
from cnnkit.style.features import InputNorm
from cnnkit.viz.cam import default_cam_layer, grad_cam, overlay, saliency

PLAIN = InputNorm("RGB", 1.0, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))  # the network sees pixels in [0, 1]


class Linear1x1(nn.Module):
    """y = W_fc mean_ij(W_conv x_ij + b): every gradient is known in closed form."""

    def __init__(self, w_conv, b_conv, w_fc) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 2, 1))
        self.fc = nn.Linear(2, 3, bias=False)
        with torch.no_grad():
            self.features[0].weight.copy_(torch.tensor(w_conv).view(2, 3, 1, 1))
            self.features[0].bias.copy_(torch.tensor(b_conv))
            self.fc.weight.copy_(torch.tensor(w_fc))

    def forward(self, x):
        return self.fc(self.features(x).mean((2, 3)))


W_CONV = [[1.0, -2.0, 0.5], [0.0, 1.0, 1.0]]
B_CONV = [0.1, -0.2]
W_FC = [[2.0, -1.0], [-1.0, 3.0], [0.5, 0.5]]


def test_grad_cam_matches_the_hand_computation():
    model = Linear1x1(W_CONV, B_CONV, W_FC)
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (5, 6, 3), dtype=np.uint8)
    x = image.astype(np.float64) / 255.0
    A = np.einsum("kc,hwc->khw", np.array(W_CONV), x) + np.array(B_CONV)[:, None, None]  # (2, 5, 6)
    logits = np.array(W_FC) @ A.mean((1, 2))
    for c in range(3):
        # d y_c / d A_k[i, j] = W_fc[c, k] / (h w): alpha_k = W_fc[c, k] / 30
        cam = np.maximum(np.einsum("k,khw->hw", np.array(W_FC[c]) / 30.0, A), 0)
        cam = cam / cam.max() if cam.max() > 0 else cam
        got, cls, probs = grad_cam(model, image, target=c, layer="features.0", norm=PLAIN)
        assert cls == c
        np.testing.assert_allclose(got, cam, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(probs.numpy(), np.exp(logits) / np.exp(logits).sum(), rtol=1e-4)
    _, predicted, _ = grad_cam(model, image, norm=PLAIN)
    assert predicted == int(np.argmax(logits))


def test_saliency_matches_the_hand_computation():
    model = Linear1x1(W_CONV, B_CONV, W_FC)
    image = np.random.default_rng(1).integers(0, 256, (4, 4, 3), dtype=np.uint8)
    s, c = saliency(model, image, target=1, norm=PLAIN)
    # d y_1 / d x[ch, i, j] = sum_k W_fc[1, k] W_conv[k, ch] / 16, the same at every pixel
    g = np.abs(np.array(W_FC[1]) @ np.array(W_CONV)) / 16
    assert c == 1 and g.max() > 0
    np.testing.assert_allclose(s, np.ones((4, 4)), rtol=1e-5)


def test_grad_cam_on_a_deeper_net_and_errors(tiny_vgg):
    image = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    assert default_cam_layer(tiny_vgg) == "features.7"
    cam, c, probs = grad_cam(tiny_vgg, image)
    assert cam.shape == (16, 16) and 0 <= cam.min() and cam.max() <= 1 and 0 <= c < 4
    assert float(probs.sum()) == pytest.approx(1.0, abs=1e-5)
    cam_conv, _, _ = grad_cam(tiny_vgg, image, layer="features.6")  # a conv followed by a ReLU: no in-place change
    assert cam_conv.shape == (16, 16)
    with pytest.raises(InputError, match="out of range"):
        grad_cam(tiny_vgg, image, target=9)


def test_overlay_blends():
    image = np.zeros((3, 3, 3), np.uint8)
    heat = np.ones((3, 3))
    out = overlay(image, heat, alpha=1.0)
    assert out.dtype == np.uint8 and out.shape == (3, 3, 3)
    assert tuple(out[0, 0]) != (0, 0, 0)
    np.testing.assert_array_equal(overlay(image, heat, alpha=0.0), image)

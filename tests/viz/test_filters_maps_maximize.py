"""First-layer filters, feature maps and activation maximisation on a tiny network."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cnnkit.errors import InputError
from cnnkit.style.features import FeatureExtractor, InputNorm
from cnnkit.viz.filters import filter_images, first_conv
from cnnkit.viz.maps import feature_maps
from cnnkit.viz.maximize import maximize


def test_filters_are_scaled_around_gray(tiny_vgg):
    imgs = filter_images(tiny_vgg)
    assert imgs.shape == (8, 3, 3, 3) and imgs.min() >= 0 and imgs.max() <= 1
    w = tiny_vgg.features[0].weight.detach().numpy()
    k = 2
    expected = 0.5 + 0.5 * w[k] / np.abs(w[k]).max()
    np.testing.assert_allclose(imgs[k], expected.transpose(1, 2, 0), rtol=1e-6)
    np.testing.assert_allclose(filter_images(tiny_vgg, bgr=True), imgs[..., ::-1])
    assert first_conv(tiny_vgg)[0] == "features.0"


def test_feature_maps_match_the_extractor(tiny_vgg):
    image = np.random.default_rng(0).integers(0, 256, (12, 12, 3), dtype=np.uint8)
    maps = feature_maps(tiny_vgg, "features.4", image)
    x = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255
    with torch.no_grad():
        want = FeatureExtractor(tiny_vgg, ["features.4"])(x)["features.4"][0].numpy()
    np.testing.assert_allclose(maps, want)
    assert maps.shape == (8, 6, 6)


def test_maximize_raises_the_objective(tiny_vgg):
    img, hist = maximize(tiny_vgg, layer="features.4", unit=2, size=24, steps=25, lr=0.05, jitter=2, seed=0)
    assert img.shape == (24, 24, 3) and 0 <= img.min() and img.max() <= 1
    assert np.mean(hist[-5:]) > np.mean(hist[:5])
    img2, hist2 = maximize(tiny_vgg, target_class=1, size=24, steps=25, jitter=2, seed=0)
    assert np.mean(hist2[-5:]) > np.mean(hist2[:5])
    again, _ = maximize(tiny_vgg, target_class=1, size=24, steps=25, jitter=2, seed=0)
    np.testing.assert_array_equal(img2, again)


def test_maximize_errors(tiny_vgg):
    with pytest.raises(InputError, match="either"):
        maximize(tiny_vgg)
    with pytest.raises(InputError, match="unit"):
        maximize(tiny_vgg, layer="features.4")
    with pytest.raises(InputError, match="out of range"):
        maximize(tiny_vgg, layer="features.4", unit=50, size=16, steps=1)
    with pytest.raises(InputError, match="out of range"):
        maximize(tiny_vgg, target_class=7, size=16, steps=1, norm=InputNorm())

"""Tiled prediction equals whole-image prediction away from tile borders; padding and cropping to any size."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cnnkit.errors import InputError
from cnnkit.models import create_model
from cnnkit.models.unet import SizeRule, pad_to_rule
from cnnkit.segment.tiling import _starts, blend_window, predict_tiled, predict_whole


def _image(h, w, seed=0):
    return (np.random.default_rng(seed).random((h, w, 3)) * 255).astype(np.uint8)


def _near_internal_edges(n: int, padded: int, tile: int, stride: int, radius: int) -> np.ndarray:
    """(n,) bool: positions within `radius` of an edge of some tile that is not the image's own edge."""
    near = np.zeros(n, bool)
    for s in _starts(padded, tile, stride):
        for edge in (s, s + tile):
            if 0 < edge < padded:
                near[max(0, edge - radius) : edge + radius] = True
    return near


def test_same_padding_tiles_match_whole_image_away_from_borders():
    torch.manual_seed(0)
    model = create_model("unet_small", depth=2, base_width=8).eval()  # influence radius 24 px (measured)
    img = _image(298, 409)
    whole = predict_whole(model, img).numpy()
    tiled = predict_tiled(model, img, tile=160, overlap=32, return_probs=True)
    assert tiled.shape == whole.shape == (5, 298, 409)
    # sizes 298 -> 300, 409 -> 412 (multiples of 4); tiles 160, stride 128
    rows = _near_internal_edges(298, 300, 160, 128, 24)
    cols = _near_internal_edges(409, 412, 160, 128, 24)
    away = ~rows[:, None] & ~cols[None, :]
    assert away.mean() > 0.3
    np.testing.assert_allclose(tiled[:, away], whole[:, away], atol=1e-5)
    # and the blend keeps the rest close: probabilities, labels mostly equal
    labels = predict_tiled(model, img, tile=160, overlap=32)
    assert labels.dtype == np.uint8 and labels.shape == (298, 409)
    assert (labels[away] == whole.argmax(0)[away]).all()


def test_valid_padding_overlap_tile_is_exact_everywhere():
    """The paper's overlap-tile strategy: with unpadded convolutions every output pixel sees real (mirrored)
    context, so stitched tiles equal the whole image exactly, borders included."""
    torch.manual_seed(0)
    model = create_model("unet", in_chans=3, num_classes=3, base_width=4, depth=2).eval()
    img = _image(97, 131, seed=1)
    whole = predict_whole(model, img).numpy()
    tiled = predict_tiled(model, img, tile=40, overlap=16, return_probs=True)
    assert whole.shape == (3, 97, 131)
    np.testing.assert_allclose(tiled, whole, atol=1e-5)


def test_small_image_is_one_tile_and_grey_works():
    model = create_model("unet_small", in_chans=1, depth=2, base_width=4).eval()
    img = _image(13, 9)[..., 0]
    out = predict_tiled(model, img, tile=256)
    assert out.shape == (13, 9)
    np.testing.assert_array_equal(out, predict_whole(model, img).argmax(0).numpy())


def test_bad_arguments():
    model = create_model("unet_small", depth=2, base_width=4)
    with pytest.raises(InputError, match="overlap"):
        predict_tiled(model, _image(32, 32), tile=32, overlap=32)
    with pytest.raises(InputError, match="image"):
        predict_tiled(model, np.zeros((2, 3, 4, 5), np.uint8))


def test_pad_to_rule_and_blend_window():
    x = torch.randn(1, 2, 17, 30)
    y, (h, w) = pad_to_rule(x, SizeRule(16), mode="reflect")
    assert y.shape == (1, 2, 32, 32) and (h, w) == (17, 30)
    torch.testing.assert_close(y[..., :17, :30], x)
    y, _ = pad_to_rule(x, SizeRule(16, offset=4, margin=3))
    assert y.shape == (1, 2, 20 + 6, 36 + 6)
    win = blend_window(10, 4)
    assert win.min() > 0 and win.max() == 1 and np.allclose(win, win[::-1])
    assert _starts(100, 40, 32) == [0, 32, 60] and _starts(30, 40, 32) == [0]


def test_network_never_sees_more_than_a_tile():
    """Bounded memory by construction: every forward pass gets at most `batch_size` tiles of `tile` pixels."""
    model = create_model("unet_small", depth=2, base_width=4).eval()
    seen = []
    model.register_forward_pre_hook(lambda _m, args: seen.append(tuple(args[0].shape)))
    out = predict_tiled(model, _image(300, 500), tile=64, overlap=16, batch_size=3)
    assert out.shape == (300, 500)
    assert seen and all(s[0] <= 3 and s[2] <= 64 and s[3] <= 64 for s in seen)
    assert len(seen) >= (300 // 48) * (500 // 48) // 3

"""Test-time augmentation: the crops against slicing by hand, the averaged probabilities against a manual mean."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import TensorDataset

from cnnkit.errors import InputError
from cnnkit.models import create_model
from cnnkit.train import evaluate
from cnnkit.train.tta import five_crop, predict_tta, ten_crop, tta_views


def _manual_crops(img: torch.Tensor, h: int, w: int) -> list[torch.Tensor]:
    """Corners and centre of one image (C, H, W), by explicit pixel loops: the obvious reference."""
    C, H, W = img.shape
    top, left = int(round((H - h) / 2)), int(round((W - w) / 2))
    origins = [(0, 0), (0, W - w), (H - h, 0), (H - h, W - w), (top, left)]
    crops = []
    for r0, c0 in origins:
        out = torch.empty(C, h, w, dtype=img.dtype)
        for c in range(C):
            for i in range(h):
                for j in range(w):
                    out[c, i, j] = img[c, r0 + i, c0 + j]
        crops.append(out)
    return crops


def _mirror(img: torch.Tensor) -> torch.Tensor:
    W = img.shape[-1]
    return torch.stack([img[..., W - 1 - j] for j in range(W)], dim=-1)


@pytest.mark.parametrize("H, W, h, w", [(8, 8, 6, 6), (9, 7, 4, 5), (10, 10, 10, 10), (7, 11, 2, 9), (6, 5, 1, 1)])
def test_ten_crop_matches_manual_slicing(H, W, h, w):
    images = torch.randn(3, 2, H, W)
    crops = ten_crop(images, (h, w))
    assert crops.shape == (10, 3, 2, h, w)
    for b in range(3):
        want = _manual_crops(images[b], h, w) + _manual_crops(_mirror(images[b]), h, w)
        for k in range(10):
            assert torch.equal(crops[k, b], want[k]), (b, k)
    assert torch.equal(five_crop(images, (h, w)), crops[:5])


def test_crop_too_large_and_bad_mode_are_refused():
    with pytest.raises(InputError, match="does not fit"):
        five_crop(torch.randn(1, 1, 4, 4), 5)
    with pytest.raises(InputError, match="unknown test-time"):
        predict_tta(nn.Identity(), torch.randn(1, 3, 4, 4), "20crop")
    with pytest.raises(InputError, match=r"\(B, C, H, W\)"):
        tta_views(torch.randn(3, 4, 4), "flip")


class _Tiny(nn.Module):
    """A fixed-input classifier (flattens H x W), so crops must come back at the input size."""

    def __init__(self, c=2, hw=8, k=4):
        super().__init__()
        self.conv = nn.Conv2d(c, 3, 3, padding=1)
        self.bn = nn.BatchNorm2d(3)
        self.fc = nn.Linear(3 * hw * hw, k)

    def forward(self, x):
        return self.fc(torch.relu(self.bn(self.conv(x))).flatten(1))


def test_flip_is_the_mean_of_image_and_mirror():
    model = _Tiny().eval()
    x = torch.randn(5, 2, 8, 8)
    with torch.no_grad():
        want = (F.softmax(model(x), 1) + F.softmax(model(_mirror(x)), 1)) / 2
    assert torch.allclose(predict_tta(model, x, "flip"), want, atol=1e-6)
    assert torch.allclose(predict_tta(model, x, None), F.softmax(model(x), 1).detach(), atol=1e-6)
    assert torch.allclose(predict_tta(model, x, "none"), F.softmax(model(x), 1).detach(), atol=1e-6)


def test_ten_crop_probs_match_manual_average():
    model = _Tiny()
    model.train()  # predict_tta must switch to eval and restore the mode
    x = torch.randn(3, 2, 8, 8)
    probs = predict_tta(model, x, "10crop", crop_size=6)
    assert model.training
    model.eval()
    with torch.no_grad():
        want = torch.zeros(3, 4)
        for b in range(3):
            views = _manual_crops(x[b], 6, 6) + _manual_crops(_mirror(x[b]), 6, 6)
            for v in views:
                big = F.interpolate(v[None], size=(8, 8), mode="bilinear", align_corners=False)
                want[b] += F.softmax(model(big), 1)[0] / 10
    assert torch.allclose(probs, want, atol=1e-6)
    assert torch.allclose(probs.sum(1), torch.ones(3), atol=1e-6)


def test_ten_crop_without_resize_on_a_fully_convolutional_net():
    model = create_model("resnet20_cifar", num_classes=3, in_chans=1, width=4).eval()
    x = torch.randn(2, 1, 16, 16)
    probs = predict_tta(model, x, "10crop", crop_size=12, resize=False)
    with torch.no_grad():
        views = torch.stack([torch.stack(_manual_crops(x[b], 12, 12) + _manual_crops(_mirror(x[b]), 12, 12))
                             for b in range(2)], dim=1)  # (10, B, C, 12, 12)
        want = torch.stack([F.softmax(model(v), 1) for v in views]).mean(0)
    assert torch.allclose(probs, want, atol=1e-6)


def test_padded_ten_crop_centre_view_is_the_image():
    x = torch.randn(2, 1, 8, 8)
    views = tta_views(x, "10crop", pad=2)
    assert views.shape == (10, 2, 1, 8, 8)
    assert torch.equal(views[4], x)  # the centre crop of the padded image
    assert torch.equal(views[9], x.flip(-1))
    assert torch.equal(views[0][..., :2, :], torch.zeros(2, 1, 2, 8))  # top-left: two rows of padding


def test_default_crop_is_seven_eighths():
    views = tta_views(torch.randn(1, 1, 32, 32), "10crop", resize=False)
    assert views.shape[-2:] == (28, 28)


def test_evaluate_with_tta_uses_predict_tta():
    model = _Tiny().eval()
    x, y = torch.randn(20, 2, 8, 8), torch.randint(0, 4, (20,))
    result = evaluate(model, TensorDataset(x, y), tta="flip", batch_size=7)
    probs = predict_tta(model, x, "flip")
    assert result["accuracy"] == pytest.approx(float((probs.argmax(1) == y).float().mean()))

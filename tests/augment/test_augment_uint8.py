"""8-bit images take OpenCV's kernels: the same picture as the float path (to 8-bit rounding and OpenCV's
1/32-pixel interpolation grid), the same boxes and landmarks exactly."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from cnnkit.augment import Sample, build_transform
from cnnkit.augment import functional as AF


def _photo(h=60, w=70, seed=0):
    """A smooth random colour image as uint8 (C, H, W) and its float twin."""
    rng = np.random.default_rng(seed)
    img = ndimage.gaussian_filter(rng.random((h, w, 3)), (2, 2, 0))
    img = (img - img.min()) / (img.max() - img.min())
    u8 = np.rint(img * 255).astype(np.uint8)
    return torch.from_numpy(u8).permute(2, 0, 1), torch.from_numpy(u8.astype(np.float32) / 255).permute(2, 0, 1)


def _levels(u8: torch.Tensor, f: torch.Tensor) -> np.ndarray:
    return np.abs(u8.numpy().astype(np.float64) - f.numpy().astype(np.float64) * 255.0)


@pytest.mark.parametrize("angle, scale, shear, fill", [(10.0, 1.1, 5.0, 0.0), (-33.0, 0.8, 0.0, 0.5)])
def test_warp_affine_uint8_matches_float(angle, scale, shear, fill):
    u8, f = _photo()
    boxes, pts = torch.tensor([[10.0, 12.0, 40.0, 50.0]]), torch.tensor([[20.0, 30.0], [55.5, 8.25]])
    m = AF.affine_matrix((60, 70), angle=angle, translate=(3.0, -2.0), scale=scale, shear=(shear, 0.0))
    a = AF.warp_affine(Sample(u8, boxes=boxes, landmarks=pts), m, (50, 80), fill=fill)
    b = AF.warp_affine(Sample(f, boxes=boxes, landmarks=pts), m, (50, 80), fill=fill)
    assert a.image.dtype == torch.uint8 and a.image.shape == b.image.shape == (3, 50, 80)
    diff = _levels(a.image, b.image)
    inner = diff[:, 2:-2, 2:-2]  # the border pixels blend with the fill by slightly different weights
    assert inner.mean() < 0.6 and inner.max() <= 3
    assert torch.equal(a.boxes, b.boxes) and torch.equal(a.landmarks, b.landmarks)


@pytest.mark.parametrize("size", [(90, 100), (30, 40), (45, 90)])
def test_resize_uint8_matches_float(size):
    u8, f = _photo()
    a, b = AF.resize(Sample(u8), size).image, AF.resize(Sample(f), size).image
    assert a.dtype == torch.uint8 and a.shape == b.shape
    diff = _levels(a, b)
    # enlarging: the same bilinear filter; shrinking: OpenCV's area average vs torch's antialiased bilinear
    enlarging = size[0] >= 60 and size[1] >= 70
    assert diff.mean() < (0.6 if enlarging else 3.0) and diff.max() <= (2 if enlarging else 16)


def test_crop_with_fill_and_colour_on_uint8():
    u8, f = _photo()
    out = AF.crop(Sample(u8), -5, -5, 20, 20, fill=1.0)
    assert out.image.dtype == torch.uint8 and (out.image[:, :5, :] == 255).all()
    coloured = AF.add_colour(Sample(u8), torch.tensor([0.1, 0.0, -0.1]))
    assert coloured.image.dtype == torch.uint8  # saturated 8-bit addition, the offset rounded to a level
    expected = (f + torch.tensor([0.1, 0.0, -0.1]).view(3, 1, 1)).clamp(0, 1)
    assert (AF.as_float(coloured.image) - expected).abs().max() <= 0.5 / 255 + 1e-6
    unclipped = AF.add_colour(Sample(u8), torch.tensor([0.1, 0.0, -0.1]), clip=False)
    assert unclipped.image.is_floating_point() and unclipped.image.min() < 0  # 8 bits cannot hold it: float


def test_pipeline_on_uint8_moves_targets_like_float():
    u8, f = _photo(96, 96)
    spec = "resized_crop,flip,affine,color"
    boxes, pts = torch.tensor([[20.0, 20.0, 60.0, 70.0]]), torch.tensor([[30.0, 40.0]])
    a = build_transform(spec, image_size=64, seed=3)(Sample(u8, boxes=boxes, landmarks=pts))
    b = build_transform(spec, image_size=64, seed=3)(Sample(f, boxes=boxes, landmarks=pts))
    assert a.image.shape == b.image.shape == (3, 64, 64)
    assert torch.allclose(a.boxes, b.boxes) and torch.allclose(a.landmarks, b.landmarks)
    assert (AF.as_float(a.image) - b.image).abs().mean() < 3 / 255

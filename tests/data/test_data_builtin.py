"""The built-in data sets: contents, conversions, splits, normalisation."""

import numpy as np
import pytest
import torch
from matplotlib.path import Path as MplPath

from cnnkit.data import load_dataset, make_shapes
from cnnkit.data.builtin import _circle, _cross, _square, _star, _triangle, digits
from cnnkit.errors import UnknownNameError


def _bilinear_reference(img: np.ndarray, size: int) -> np.ndarray:
    """Slow, obvious bilinear resize with half-pixel centres and edge clamping (align_corners=False)."""
    h, w = img.shape
    out = np.zeros((size, size))
    for r in range(size):
        for c in range(size):
            y = min(max((r + 0.5) * h / size - 0.5, 0), h - 1)
            x = min(max((c + 0.5) * w / size - 0.5, 0), w - 1)
            y0, x0 = int(np.floor(y)), int(np.floor(x))
            y1, x1 = min(y0 + 1, h - 1), min(x0 + 1, w - 1)
            fy, fx = y - y0, x - x0
            out[r, c] = ((1 - fy) * ((1 - fx) * img[y0, x0] + fx * img[y0, x1])
                         + fy * ((1 - fx) * img[y1, x0] + fx * img[y1, x1]))
    return out


def test_digits_are_sklearn_digits_resized_bilinear():
    from sklearn.datasets import load_digits

    images, targets, classes = digits(32)
    d = load_digits()
    assert images.shape == (1797, 32, 32, 1) and images.dtype == np.uint8
    assert classes == [str(k) for k in range(10)] and np.array_equal(targets, d.target)
    for i in (0, 77, 1796):
        ref = np.clip(np.rint(_bilinear_reference(d.images[i] * 255 / 16, 32)), 0, 255)
        assert np.abs(images[i, :, :, 0].astype(int) - ref).max() <= 1


def test_digits_dataset_splits_channels_and_normalisation():
    parts = {s: load_dataset("digits", split=s, seed=1) for s in ("train", "val", "test")}
    assert sum(len(p) for p in parts.values()) == 1797
    ids = [set(p._indices.tolist()) for p in parts.values()]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
    train = parts["train"]
    # fixed statistics: the same for every split and seed
    other = load_dataset("digits", split="test", seed=7)
    assert train.mean == parts["val"].mean == other.mean and train.std == other.std
    x, y = train[5]
    raw, label = train.raw(5)
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32 and y == label == train.targets[5]
    assert np.array_equal(raw[..., 0], raw[..., 1]) and np.array_equal(raw[..., 0], raw[..., 2])  # gray -> RGB
    expected = (torch.from_numpy(raw.astype(np.float32)).permute(2, 0, 1) / 255 - torch.tensor(train.mean)[:, None,
                None]) / torch.tensor(train.std)[:, None, None]
    assert torch.allclose(x, expected, atol=1e-6)
    # the fixed statistics are the pool's own
    pool = digits(32)[0].astype(np.float64) / 255
    assert train.mean[0] == pytest.approx(pool.mean(), abs=1e-9)
    assert train.std[0] == pytest.approx(pool.std(), abs=1e-9)
    gray = load_dataset("digits", in_chans=1, image_size=16)
    assert gray[0][0].shape == (1, 16, 16) and len(gray.mean) == 1


def test_shapes_dataset_is_deterministic_and_balanced():
    a, ta = make_shapes(4, 24, seed=5)
    b, tb = make_shapes(4, 24, seed=5)
    c, _ = make_shapes(4, 24, seed=6)
    assert a.shape == (20, 24, 24, 3) and np.array_equal(a, b) and np.array_equal(ta, tb)
    assert not np.array_equal(a, c)
    assert np.bincount(ta).tolist() == [4] * 5
    ds = load_dataset("shapes", split="all")
    assert len(ds) == 1500 and ds.classes == ["circle", "square", "triangle", "star", "cross"]
    assert ds.class_counts() == [300] * 5 and ds.image_size == 64 and ds[0][0].shape == (3, 64, 64)


def test_shapes_grayscale_is_pil_luma():
    from PIL import Image

    rgb = load_dataset("shapes", split="all")  # default size: the pool is generated once per process
    gray = load_dataset("shapes", split="all", in_chans=1)
    for i in (0, 9):
        ref = np.asarray(Image.fromarray(rgb.raw(i)[0]).convert("L")).astype(int)
        assert np.abs(gray.raw(i)[0][..., 0].astype(int) - ref).max() <= 1


def _star_polygon(points=5, inner=0.45):
    verts = []
    for k in range(2 * points):
        r = 1.0 if k % 2 == 0 else inner
        a = k * np.pi / points
        verts.append((r * np.cos(a), r * np.sin(a)))
    return verts


@pytest.mark.parametrize(
    "test,polygon",
    [
        (_triangle, [(np.cos(a), np.sin(a)) for a in np.pi / 2 + np.arange(3) * 2 * np.pi / 3]),
        (_star, _star_polygon()),
        (_square, [(-0.75, -0.75), (0.75, -0.75), (0.75, 0.75), (-0.75, 0.75)]),
        (_cross, [(-0.28, -0.85), (0.28, -0.85), (0.28, -0.28), (0.85, -0.28), (0.85, 0.28), (0.28, 0.28),
                  (0.28, 0.85), (-0.28, 0.85), (-0.28, 0.28), (-0.85, 0.28), (-0.85, -0.28), (-0.28, -0.28)]),
    ],
)
def test_shape_masks_match_polygon_reference(test, polygon):
    rng = np.random.default_rng(0)
    pts = rng.uniform(-1.2, 1.2, (4000, 2))
    inside = test(pts[:, 0], pts[:, 1])
    ref = MplPath(polygon).contains_points(pts)
    assert (inside != ref).mean() < 0.002  # only points within float error of an edge may differ
    assert inside.any() and not inside.all()


def test_circle_mask():
    pts = np.random.default_rng(1).uniform(-1.5, 1.5, (2000, 2))
    assert np.array_equal(_circle(pts[:, 0], pts[:, 1]), np.hypot(pts[:, 0], pts[:, 1]) <= 1)


def test_unknown_builtin_names_close_matches():
    with pytest.raises(UnknownNameError, match="did you mean shapes"):
        load_dataset("shape")

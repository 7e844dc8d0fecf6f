"""Colour shifting and AlexNet's PCA colour augmentation."""

import numpy as np
import pytest
import torch

from cnnkit.augment import ColourShift, PCAColour, Sample, build_transform, fit_pca_colour
from cnnkit.augment.pca import IMAGENET_PCA
from cnnkit.errors import InputError


def test_colour_shift_adds_exactly_the_sampled_offsets():
    x = 0.3 + 0.4 * torch.rand(3, 10, 12)  # mid-range: clipping never triggers
    t = ColourShift(0.1)
    params = t.sample_params(np.random.default_rng(5), (10, 12))
    out = t.apply(Sample(x, boxes=[[1, 2, 3, 4]]), params)
    assert torch.allclose(out.image - x, params["offset"].view(3, 1, 1).expand(3, 10, 12), atol=1e-6)
    assert params["offset"].abs().max() <= 0.1 and out.boxes.tolist() == [[1, 2, 3, 4]]
    # the pipeline draws the same offsets from the same seed
    composed = build_transform("color", image_size=None, seed=9)(x)
    expected = ColourShift(0.1).sample_params(np.random.default_rng(9), (10, 12))["offset"]
    assert torch.allclose(composed - x, expected.view(3, 1, 1).expand_as(x), atol=1e-6)
    gray = t.apply(Sample(x[:1]), params).image
    assert torch.allclose(gray - x[:1], params["offset"][0].expand(1, 10, 12), atol=1e-6)


def test_colour_shift_clips_to_the_unit_range():
    x = torch.ones(3, 4, 4)
    out = ColourShift(0.5).apply(Sample(x), {"offset": torch.tensor([0.3, -0.2, 0.0])}).image
    assert out.max() <= 1.0 and torch.allclose(out[1], torch.full((4, 4), 0.8))


def _correlated_images(n=6, size=16, seed=0):
    """Images whose RGB values have a known, strongly non-diagonal covariance."""
    rng = np.random.default_rng(seed)
    mix = np.array([[0.20, 0.05, 0.00], [0.15, 0.10, 0.02], [0.05, 0.02, 0.08]])
    z = rng.normal(size=(n, size, size, 3))
    return np.clip(0.5 + z @ mix.T, 0, 1)


def test_fit_pca_colour_matches_numpy_eigendecomposition():
    imgs = _correlated_images()
    stats = fit_pca_colour(imgs)
    px = imgs.reshape(-1, 3)
    cov = np.cov(px, rowvar=False)
    vals, vecs = np.linalg.eigh(cov)
    assert np.allclose(stats.eigvals, vals[::-1])
    assert np.all(np.diff(stats.eigvals) <= 0)
    for k in range(3):  # each component is an eigenvector of the covariance (sign is a convention)
        v = stats.eigvecs[:, k]
        assert np.allclose(cov @ v, stats.eigvals[k] * v, atol=1e-10) and np.isclose(np.linalg.norm(v), 1)
    # the same statistics from uint8 images and from float tensors (3, H, W)
    as_uint8 = np.rint(imgs * 255).astype(np.uint8)
    from_tensors = fit_pca_colour(torch.from_numpy(as_uint8 / 255.0).permute(0, 3, 1, 2))
    assert np.allclose(fit_pca_colour(as_uint8).eigvals, from_tensors.eigvals)


def test_pca_colour_shift_lies_along_the_principal_components():
    stats = fit_pca_colour(_correlated_images())
    t = PCAColour(stats, alpha_std=0.1)
    x = 0.4 + 0.2 * torch.rand(3, 9, 11)
    params = t.sample_params(np.random.default_rng(2), (9, 11))
    out = t.apply(Sample(x), params).image
    delta = (out - x).reshape(3, -1)
    assert torch.allclose(delta, delta[:, :1].expand_as(delta), atol=1e-6)  # the same vector at every pixel
    # solving eigvecs @ c = delta recovers c = alpha * lambda, with the sampled alpha
    c = np.linalg.solve(stats.eigvecs, delta[:, 0].double().numpy())
    assert np.allclose(c, params["alpha"] * stats.eigvals, atol=1e-6)
    alphas = np.array([t.sample_params(np.random.default_rng(s), (1, 1))["alpha"] for s in range(400)])
    assert abs(alphas.std() - 0.1) < 0.01 and abs(alphas.mean()) < 0.01  # alpha ~ N(0, 0.1)


def test_pca_default_is_imagenet_and_needs_rgb():
    t = PCAColour()
    assert t.stats is IMAGENET_PCA
    with pytest.raises(InputError, match="RGB"):
        t(torch.rand(1, 4, 4))


def test_fit_pca_colour_from_a_dataset():
    from cnnkit.data import load_dataset

    ds = load_dataset("shapes", split="train")
    stats = fit_pca_colour(ds, max_images=50)
    pix = np.concatenate([ds.raw(int(i))[0].reshape(-1, 3) for i in np.unique(np.linspace(0, len(ds) - 1, 50)
                                                                             .astype(int))]) / 255.0
    assert np.allclose(stats.eigvals, np.linalg.eigvalsh(np.cov(pix, rowvar=False))[::-1])

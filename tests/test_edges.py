"""cnnkit.edges and `cnnkit edges`: cross-correlation against slow references, sign conventions, learning."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage
import scipy.signal
import skimage.data
import torch
import torch.nn.functional as F
from PIL import Image
from skimage.transform import resize

from cnnkit.edges import (
    course_example,
    cross_correlate2d,
    edge_image,
    edge_response,
    get_filter,
    learn_edge_filter,
    list_filters,
    normalize_for_display,
    to_grayscale,
)
from cnnkit.errors import InputError, UnknownNameError


def _slow_correlate(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """The definition, one output at a time: out[y, x] = sum of image window * kernel (no flip)."""
    kh, kw = kernel.shape
    out = np.zeros((image.shape[0] - kh + 1, image.shape[1] - kw + 1))
    for y in range(out.shape[0]):
        for x in range(out.shape[1]):
            out[y, x] = np.sum(image[y:y + kh, x:x + kw] * kernel)
    return out


def test_course_6x6_example():
    image, kernel, out = course_example()
    assert image.shape == (6, 6) and (image[:, :3] == 10).all() and (image[:, 3:] == 0).all()
    np.testing.assert_array_equal(kernel, [[1, 0, -1]] * 3)
    np.testing.assert_array_equal(out, [[0, 30, 30, 0]] * 4)


@pytest.mark.parametrize("seed", range(6))
def test_cross_correlation_matches_references(seed):
    rng = np.random.default_rng(seed)
    image = rng.normal(size=(int(rng.integers(5, 30)), int(rng.integers(5, 30))))
    kernel = rng.normal(size=(int(rng.integers(1, 6)), int(rng.integers(1, 6))))
    ours = cross_correlate2d(image, kernel)
    np.testing.assert_allclose(ours, _slow_correlate(image, kernel), atol=1e-12)
    np.testing.assert_allclose(ours, scipy.signal.correlate2d(image, kernel, mode="valid"), atol=1e-12)
    # torch's conv2d is a cross-correlation too: the course's "convolution"
    t = F.conv2d(torch.tensor(image)[None, None], torch.tensor(kernel)[None, None])[0, 0].numpy()
    np.testing.assert_allclose(ours, t, atol=1e-10)
    # the convolution of signal processing flips the kernel: same result only with the kernel flipped back
    np.testing.assert_allclose(ours, scipy.signal.convolve2d(image, kernel[::-1, ::-1], mode="valid"), atol=1e-12)


@pytest.mark.parametrize("seed", range(4))
def test_same_mode_repeats_the_border(seed):
    rng = np.random.default_rng(10 + seed)
    image = rng.normal(size=(int(rng.integers(3, 25)), int(rng.integers(3, 25))))
    kernel = rng.normal(size=(3, 3))
    ours = cross_correlate2d(image, kernel, mode="same")
    assert ours.shape == image.shape
    np.testing.assert_allclose(ours, scipy.ndimage.correlate(image, kernel, mode="nearest"), atol=1e-12)


def test_vertical_sign_conventions():
    light_left = np.zeros((8, 8))
    light_left[:, :4] = 1.0
    for name in list_filters():
        v = edge_response(light_left, name, "vertical", mode="valid")
        assert v.max() > 0 and v.min() == 0  # light-to-dark: positive
        flipped = edge_response(light_left, name, "vertical", polarity="dark-to-light", mode="valid")
        np.testing.assert_array_equal(flipped, -v)
        np.testing.assert_array_equal(edge_response(light_left, name, "vertical", absolute=True, mode="valid"), v)
        assert np.abs(edge_response(light_left, name, "horizontal", mode="valid")).max() == 0  # no horizontal edge
        light_top = light_left.T
        np.testing.assert_array_equal(edge_response(light_top, name, "horizontal", mode="valid"), v.T)
        np.testing.assert_array_equal(get_filter(name, "horizontal"), get_filter(name, "vertical").T)


def test_both_is_gradient_magnitude_and_ignores_polarity():
    rng = np.random.default_rng(3)
    image = rng.random((20, 17))
    v = edge_response(image, "scharr", "vertical")
    h = edge_response(image, "scharr", "horizontal")
    both = edge_response(image, "scharr", "both")
    np.testing.assert_allclose(both, np.sqrt(v**2 + h**2))
    np.testing.assert_allclose(both, edge_response(image, "scharr", "both", polarity="dark-to-light"))
    np.testing.assert_allclose(edge_response(image, "sobel", absolute=True), np.abs(edge_response(image, "sobel")))


def test_named_kernels():
    np.testing.assert_array_equal(get_filter("sobel"), [[1, 0, -1], [2, 0, -2], [1, 0, -1]])
    np.testing.assert_array_equal(get_filter("scharr"), [[3, 0, -3], [10, 0, -10], [3, 0, -3]])
    np.testing.assert_array_equal(get_filter("prewitt"), get_filter("basic"))
    # scipy's Sobel derivative along x is the same filter with the opposite sign (it measures dark-to-light)
    rng = np.random.default_rng(5)
    image = rng.random((12, 12))
    np.testing.assert_allclose(edge_response(image, "sobel", mode="same"),
                               -scipy.ndimage.sobel(image, axis=1, mode="nearest"), atol=1e-12)


def test_grayscale():
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, size=(9, 7, 3), dtype=np.uint8)
    gray = to_grayscale(rgb)
    expected = (0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]) / 255
    np.testing.assert_allclose(gray, expected)
    pil = np.asarray(Image.fromarray(rgb).convert("L"), dtype=np.float64) / 255
    assert np.abs(gray - pil).max() <= 1 / 255 + 1e-9
    rgba = np.dstack([rgb, np.zeros((9, 7), np.uint8)])
    np.testing.assert_allclose(to_grayscale(rgba), gray)
    np.testing.assert_allclose(to_grayscale(gray), gray)  # float gray stays as it is
    with pytest.raises(InputError):
        to_grayscale(np.zeros((4, 4, 2)))


def test_display_normalisation():
    r = np.array([[-2.0, 0.0, 1.0], [2.0, 0.5, -1.0]])
    d = normalize_for_display(r, percentile=100)
    np.testing.assert_allclose(d, 0.5 + r / 4)
    assert normalize_for_display(np.zeros((3, 3))).tolist() == [[0.0] * 3] * 3
    assert (normalize_for_display(np.zeros((3, 3)), signed=True) == 0.5).all()
    rng = np.random.default_rng(2)
    d = normalize_for_display(rng.normal(size=(50, 50)) ** 3)
    assert d.min() >= 0 and d.max() <= 1 and d.max() == 1 and d.min() == 0  # the strongest saturate
    photo = skimage.data.camera()
    img = edge_image(photo, "sobel", "both")
    assert img.dtype == np.uint8 and img.shape == photo.shape and img.max() == 255
    signed = edge_image(np.full((10, 10), 0.3), "sobel")
    assert (signed == 128).all()  # a flat image: mid-gray, no edge


def test_errors():
    with pytest.raises(UnknownNameError, match="basic, prewitt, sobel, scharr"):
        get_filter("canny")
    with pytest.raises(InputError, match="direction"):
        edge_response(np.zeros((5, 5)), "sobel", "diagonal")
    with pytest.raises(InputError, match="polarity"):
        get_filter("sobel", polarity="up")
    with pytest.raises(InputError, match="does not fit"):
        cross_correlate2d(np.zeros((2, 2)), np.ones((3, 3)))


def _small_photo(size: int = 128) -> np.ndarray:
    return resize(to_grayscale(skimage.data.camera()), (size, size), anti_aliasing=True)


def test_learned_filter_converges_to_sobel():
    result = learn_edge_filter(_small_photo(), "sobel", steps=400, lr=0.2, seed=0)
    start = learn_edge_filter(_small_photo(), "sobel", steps=1, seed=0).kernel
    assert np.abs(start - get_filter("sobel")).max() > 0.5  # it really started far away
    assert result.max_error < 1e-2
    assert result.losses[-1] < 1e-6 * result.losses[0]
    assert result.bias is None


def test_learned_filter_with_bias_and_custom_target():
    target = np.random.default_rng(4).normal(size=(3, 3))
    result = learn_edge_filter(skimage.data.astronaut()[::4, ::4], target, steps=400, seed=1, bias=True)
    assert np.abs(result.kernel - target).max() < 1e-2 and abs(result.bias) < 1e-3
    with pytest.raises(InputError, match="3x3"):
        learn_edge_filter(_small_photo(16), np.ones((5, 5)))


def test_cli_edges_writes_an_image(run_cli, tmp_path):
    src = tmp_path / "photo.png"
    Image.fromarray(skimage.data.astronaut()[:100, :120]).save(src)
    out = tmp_path / "edges.png"
    code, stdout, err = run_cli("edges", src, "--filter", "scharr", "--direction", "horizontal",
                                "--polarity", "dark-to-light", "--abs", "-o", out)
    assert code == 0, err
    assert str(out) in stdout and "cross-correlation" in stdout
    saved = np.asarray(Image.open(out))
    expected = edge_image(np.asarray(Image.open(src).convert("RGB")), "scharr", "horizontal", "dark-to-light", True)
    np.testing.assert_array_equal(saved, expected)


@pytest.mark.parametrize(
    "make, args, expected",
    [
        (lambda p: None, ("--filter", "sobel"), "file not found"),
        (lambda p: p.write_text("not an image"), (), "not a readable image"),
        (lambda p: Image.new("RGB", (8, 8)).save(p, format="PNG"), ("--filter", "canny"), "basic, prewitt, sobel"),
        (lambda p: Image.new("RGB", (8, 8)).save(p, format="PNG"), ("--direction", "diag"), "vertical"),
        (lambda p: Image.new("RGB", (8, 8)).save(p, format="PNG"), ("--direction", "both", "--polarity",
                                                                      "dark-to-light"), "no meaning"),
    ],
)
def test_cli_edges_errors_are_one_line(run_cli, tmp_path, make, args, expected):
    path = tmp_path / "in.png"
    make(path)
    code, _, err = run_cli("edges", path, *args, "-o", tmp_path / "out.png")
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and expected in err and "Traceback" not in err
    if expected not in ("vertical", "no meaning"):
        assert "in.png" in err or "canny" in err


def test_tour_section_quick(tmp_path):
    from cnnkit.tour import run_tour

    index, failed = run_tour(tmp_path, only=["s020_edges"], quick=True)
    assert failed == []
    pngs = sorted(p.name for p in tmp_path.glob("*.png"))
    assert len(pngs) == 4 and all((tmp_path / p).stat().st_size > 1000 for p in pngs)
    assert "cross-correlation" in index.read_text()

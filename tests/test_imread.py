"""Every image mode reads as the 8-bit picture it shows: 16-bit, palette, alpha, CMYK, float TIFF, EXIF rotation."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from skimage import data

from cnnkit.data.dataset import FileStore
from cnnkit.errors import FileFormatError
from cnnkit.io import read_image


@pytest.fixture(scope="module")
def photo():
    return data.astronaut()[::4, ::4].copy()  # (128, 128, 3) uint8


@pytest.fixture(scope="module")
def gray():
    return data.camera()[::4, ::4].copy()  # (128, 128) uint8


def _close(a, b, tol=1.0):
    assert a.shape == b.shape
    assert np.abs(a.astype(int) - b.astype(int)).mean() <= tol


def test_16bit_gray_png_is_not_white(tmp_path, gray):
    path = tmp_path / "g16.png"
    Image.fromarray(gray.astype(np.uint16) * 257).save(path)
    assert Image.open(path).mode.startswith("I")
    _close(read_image(path, "L"), gray, 0.0)
    _close(read_image(path)[:, :, 0], gray, 0.0)


def test_16bit_rgb_png(tmp_path, photo):
    import cv2

    path = tmp_path / "rgb16.png"
    cv2.imwrite(str(path), (photo.astype(np.uint16) * 257)[:, :, ::-1])
    _close(read_image(path), photo, 0.0)


def test_palette_la_rgba_cmyk(tmp_path, photo, gray):
    Image.fromarray(photo).quantize(256).save(tmp_path / "p.png")
    _close(read_image(tmp_path / "p.png"), photo, 12.0)  # quantisation error only
    Image.fromarray(gray).convert("LA").save(tmp_path / "la.png")
    _close(read_image(tmp_path / "la.png", "L"), gray, 0.0)  # opaque alpha: unchanged
    rgba = np.dstack([photo, np.zeros(photo.shape[:2], np.uint8)])
    Image.fromarray(rgba).save(tmp_path / "clear.png")
    assert (read_image(tmp_path / "clear.png") == 255).all()  # fully transparent shows the white background
    Image.fromarray(photo).convert("CMYK").save(tmp_path / "c.tif")
    _close(read_image(tmp_path / "c.tif"), photo, 2.0)


@pytest.mark.parametrize("scale", [1.0, 255.0])
def test_float_tiff_in_either_range(tmp_path, gray, scale):
    path = tmp_path / "f.tif"
    Image.fromarray(gray.astype(np.float32) / 255.0 * scale).save(path)
    _close(read_image(path, "L"), gray, 0.0)


def test_float_tiff_out_of_range_is_refused(tmp_path, gray):
    path = tmp_path / "f.tif"
    Image.fromarray(gray.astype(np.float32) * 1000.0).save(path)
    with pytest.raises(FileFormatError, match=r"\[0, 1\] or \[0, 255\]"):
        read_image(path)


def test_exif_orientation_applied(tmp_path, photo):
    im = Image.fromarray(photo[:, :96])
    exif = im.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    im.save(tmp_path / "r.jpg", exif=exif, quality=95)
    out = read_image(tmp_path / "r.jpg")
    assert out.shape == (96, 128, 3)
    _close(out, np.rot90(photo[:, :96], k=-1), 6.0)


def test_training_sets_use_the_same_reader(tmp_path, gray):
    path = tmp_path / "g16.png"
    Image.fromarray(gray.astype(np.uint16) * 257).save(path)
    store = FileStore([path], in_chans=1, image_size=None)
    _close(store.read(0)[:, :, 0], gray, 0.0)

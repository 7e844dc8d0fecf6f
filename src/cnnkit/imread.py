"""One image decoder for every command: any bit depth, palette, alpha, CMYK, float TIFF, EXIF rotation.

PIL's own `convert("RGB")` reads a 16-bit grayscale PNG as solid white (it clips 0..65535 to 255) and ignores
the EXIF orientation a phone writes instead of rotating the pixels. `to_8bit` maps every mode PIL opens onto
8-bit "RGB" or "L" by its real range, so that a 16-bit scan, a float TIFF and a JPEG of the same scene give the
same array.
"""

from __future__ import annotations

import numpy as np

from cnnkit.errors import FileFormatError

# integer modes PIL opens with more than 8 bits per sample, and their full-scale value
_WIDE_INT = {"I;16": 65535, "I;16B": 65535, "I;16L": 65535, "I;16N": 65535}


def _scale_wide(arr: np.ndarray, mode: str, where: str) -> np.ndarray:
    """A >8-bit or float single-channel array as uint8, by the range its type promises."""
    arr = arr.astype(np.float64)
    if mode in _WIDE_INT:
        full = _WIDE_INT[mode]
    elif mode == "I":  # 32-bit integers: PIL also opens 16-bit PNGs this way
        lo, hi = float(arr.min(initial=0)), float(arr.max(initial=0))
        if lo < 0:
            raise FileFormatError(f"{where}: a 32-bit integer image with negative values ({lo:g}); "
                                  "save it as an 8- or 16-bit PNG")
        full = 255 if hi <= 255 else 65535 if hi <= 65535 else hi
    else:  # "F": floats in [0, 1] (the usual convention) or in [0, 255]
        if not np.isfinite(arr).all():
            raise FileFormatError(f"{where}: a float image holding NaN or infinite values; clean it before use")
        lo, hi = float(arr.min(initial=0)), float(arr.max(initial=0))
        if lo < 0 or hi > 255:
            raise FileFormatError(f"{where}: float pixel values span [{lo:g}, {hi:g}]; cnnkit reads float images "
                                  "in [0, 1] or [0, 255]: rescale it to one of those")
        full = 1.0 if hi <= 1.0 else 255.0
    return np.clip(np.rint(arr * (255.0 / full)), 0, 255).astype(np.uint8)


def to_8bit(im, mode: str = "RGB", *, where: str = "image"):
    """A PIL image in 8-bit `mode` ("RGB" or "L"), orientation applied, alpha composited over white.

    Args:
        im: an opened PIL image (any mode).
        mode: "RGB" or "L".
        where: how to name the image in an error (its path).

    Raises:
        FileFormatError: a mode or value range that cannot be read faithfully.
    """
    from PIL import Image, ImageOps

    if mode not in ("RGB", "L"):
        raise ValueError(f"mode must be 'RGB' or 'L', not {mode!r}")
    try:
        im = ImageOps.exif_transpose(im)  # phones store the pixels sideways and say so in EXIF
    except (SyntaxError, ValueError, OSError, KeyError, TypeError):
        pass  # a broken EXIF block: keep the pixels as stored
    if im.mode in _WIDE_INT or im.mode in ("I", "F"):
        im = Image.fromarray(_scale_wide(np.asarray(im), im.mode, where), mode="L")
    if im.mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    if im.mode in ("LA", "La", "RGBA", "RGBa", "PA"):
        rgba = im.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        im = Image.alpha_composite(background, rgba).convert("RGB")
    if im.mode == "1":
        im = im.convert("L")
    if im.mode not in ("RGB", "L", "CMYK", "YCbCr", "LAB", "HSV"):
        raise FileFormatError(f"{where}: cannot read pixel mode {im.mode!r}; save it as an 8- or 16-bit PNG or a JPEG")
    return im.convert(mode) if im.mode != mode else im

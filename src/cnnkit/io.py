"""Reading and writing files safely: images in, atomic writes out."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from cnnkit.errors import FileFormatError, MissingFileError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".gif", ".webp")


def require_file(path: str | os.PathLike) -> Path:
    """Return `path` as a Path, or raise MissingFileError naming it."""
    p = Path(path)
    if not p.exists():
        raise MissingFileError(f"file not found: {p}")
    if p.is_dir():
        raise FileFormatError(f"expected a file but found a folder: {p}")
    return p


def read_image(path: str | os.PathLike, mode: str = "RGB") -> np.ndarray:
    """Read an image file as a uint8 array, whatever its bit depth, palette, alpha or EXIF orientation.

    16-bit and float images are scaled by their range (not clipped), palettes expanded, transparency composited
    over white, CMYK converted, and the EXIF orientation applied (see `cnnkit.imread.to_8bit`).

    Args:
        path: image file (PNG, JPEG, BMP, TIFF ...).
        mode: "RGB" gives (H, W, 3); "L" gives (H, W) grayscale.

    Raises:
        MissingFileError: the path does not exist.
        FileFormatError: the file is not a readable image.
    """
    from PIL import Image, UnidentifiedImageError

    from cnnkit.imread import to_8bit

    p = require_file(path)
    try:
        with Image.open(p) as im:
            im.load()
            return np.asarray(to_8bit(im, mode, where=str(p)))
    except FileFormatError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise FileFormatError(f"not a readable image: {p} ({type(e).__name__})") from None


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb") -> Iterator:
    """Open a temporary file beside `path`; on success it replaces `path` in one step.

    A crash or kill -9 mid-write leaves the old file (or none) in place, never a half-written one.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        # mkstemp creates 0600; give the file the mode an ordinary open() would have had.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def save_image(path: str | os.PathLike, image: np.ndarray) -> Path:
    """Write an image atomically; float images are taken to lie in [0, 1], uint8 as is.

    The format follows the suffix of `path` (PNG when it has none we know).
    """
    from PIL import Image

    target = Path(path)
    arr = np.asarray(image)
    if arr.dtype != np.uint8:
        arr = (np.clip(arr, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    fmt = {".jpg": "JPEG", ".jpeg": "JPEG", ".bmp": "BMP", ".tif": "TIFF", ".tiff": "TIFF"}.get(
        target.suffix.lower(), "PNG"
    )
    with atomic_write(target) as f:
        Image.fromarray(arr).save(f, format=fmt)
    return target


def save_figure(path: str | os.PathLike, fig) -> Path:
    """Save a matplotlib figure atomically as PNG and close it."""
    import matplotlib.pyplot as plt

    target = Path(path)
    with atomic_write(target) as f:
        fig.savefig(f, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return target

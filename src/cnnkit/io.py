"""Reading and writing files safely: images in, atomic writes out."""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from cnnkit.errors import FileFormatError, InputError, MissingFileError

# failures of the storage itself (full, read-only, no permission), as opposed to bugs in the writer
_STORAGE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG}

_SAVE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".bmp": "BMP", ".tif": "TIFF", ".tiff": "TIFF",
                 ".webp": "WEBP"}

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
    if target.is_dir():
        raise InputError(f"cannot write {target}: it is a folder; give a file name, e.g. {target / 'out.png'}")
    parent = target.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        blocker = next((a for a in [parent, *parent.parents] if a.exists() and not a.is_dir()), parent)
        raise InputError(f"cannot write {target}: {blocker} is a file, not a folder; choose another output path") \
            from None
    except OSError as e:
        raise InputError(f"cannot create the folder {parent} for {target} ({e.strerror}); choose another output "
                         "path") from None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=parent)
    except OSError as e:
        raise InputError(f"cannot write {target}: the folder {parent} is not writable ({e.strerror}); choose another "
                         "output path") from None
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
    except BaseException as e:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(e, OSError) and e.errno in _STORAGE_ERRNOS:  # name the file the user asked for, not our temp
            raise InputError(f"cannot write {target} ({e.strerror}); nothing was written: free space or choose "
                             "another output path") from None
        raise


def save_image(path: str | os.PathLike, image: np.ndarray) -> Path:
    """Write an image atomically; float images are taken to lie in [0, 1], uint8 as is.

    The format follows the suffix of `path` (.png, .jpg/.jpeg, .bmp, .tif/.tiff, .webp; PNG when it has none); an
    unknown suffix is refused rather than written as PNG under a misleading name.
    """
    from PIL import Image

    target = Path(path)
    arr = np.asarray(image)
    if arr.dtype != np.uint8:
        arr = (np.clip(arr, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    suffix = target.suffix.lower()
    if suffix and suffix not in _SAVE_FORMATS:
        raise InputError(f"cannot write {target}: unknown image format {target.suffix!r}; use one of "
                         f"{', '.join(sorted(_SAVE_FORMATS))}")
    fmt = _SAVE_FORMATS.get(suffix, "PNG")
    if fmt in ("JPEG", "BMP") and arr.ndim == 3 and arr.shape[2] == 4:
        arr = arr[:, :, :3]  # these formats hold no alpha
    with atomic_write(target) as f:
        Image.fromarray(arr).save(f, format=fmt)
    return target


_FIGURE_FORMATS = {".png": "png", ".jpg": "jpg", ".jpeg": "jpg", ".pdf": "pdf", ".svg": "svg"}


def save_figure(path: str | os.PathLike, fig) -> Path:
    """Save a matplotlib figure atomically and close it; the format follows the suffix (.png, .jpg, .pdf, .svg; PNG
    when there is none), and an unknown suffix is refused rather than written as PNG under a misleading name."""
    import matplotlib.pyplot as plt

    target = Path(path)
    try:
        suffix = target.suffix.lower()
        if suffix and suffix not in _FIGURE_FORMATS:
            raise InputError(f"cannot write {target}: unknown figure format {target.suffix!r}; use one of "
                             f"{', '.join(sorted(_FIGURE_FORMATS))}")
        with atomic_write(target) as f:
            fig.savefig(f, format=_FIGURE_FORMATS.get(suffix, "png"), dpi=110, bbox_inches="tight")
    finally:
        plt.close(fig)
    return target

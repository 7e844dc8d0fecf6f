"""Per-pixel label PNGs for segmentation: index PNGs, grey PNGs, or RGB PNGs with a colour palette.

    labels = read_label_png("masks/0001.png")                       # int64 (H, W) class ids, 255 = ignore
    labels = read_label_png("camvid/0001_L.png", palette=colours)   # RGB: colour -> class id
    write_label_png("out.png", labels)                              # an index PNG with the VOC palette

An index ("P") PNG holds class ids as its palette indices (Pascal VOC's SegmentationClass, 255 = the ignored
border); a grey PNG holds them as values; an RGB PNG needs `palette` (a list of colours, class k = colour k, or
a {(r, g, b): id} dict, e.g. from CamVid's class_dict.csv via `read_class_colours`). A colour outside the palette
is an error naming the file, the colour and where it is.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from cnnkit.errors import FileFormatError, InputError, MissingFileError
from cnnkit.io import atomic_write

IGNORE = 255


def voc_palette(n: int = 256) -> np.ndarray:
    """Pascal VOC's colour map: uint8 (n, 3), class k's colour from the bits of k (0 black, 1 dark red, ...)."""
    k = np.arange(n)
    out = np.zeros((n, 3), np.int64)
    for shift in range(8):
        for ch in range(3):
            out[:, ch] |= ((k >> (3 * shift + ch)) & 1) << (7 - shift)
    return out.astype(np.uint8)


def _palette_dict(palette) -> dict[int, int]:
    """{packed rgb: class id} from a (C, 3) colour list or a {(r, g, b): id} mapping."""
    if isinstance(palette, dict):
        items = palette.items()
    else:
        arr = np.asarray(palette)
        if arr.ndim != 2 or arr.shape[1] != 3:
            raise InputError(f"palette must be a list of (r, g, b) colours or a {{colour: id}} dict, got {arr.shape}")
        items = ((tuple(c), k) for k, c in enumerate(arr))
    out = {}
    for colour, k in items:
        r, g, b = (int(v) for v in colour)
        out[(r << 16) | (g << 8) | b] = int(k)
    return out


def read_label_png(path, *, palette=None) -> np.ndarray:
    """Class ids int64 (H, W) of a label PNG.

    Args:
        path: the PNG (index, grey, or RGB/RGBA with `palette`).
        palette: for RGB images: colours (class k = row k) or {(r, g, b): class id}.

    Raises:
        MissingFileError, FileFormatError: missing, unreadable, or a colour not in the palette.
    """
    from PIL import Image, UnidentifiedImageError

    p = Path(path)
    if not p.is_file():
        raise MissingFileError(f"label image not found: {p}")
    try:
        with Image.open(p) as im:
            im.load()
            mode = im.mode
            if mode == "P" and palette is None:
                return np.asarray(im, np.uint8).astype(np.int64)
            if mode in ("L", "I", "I;16", "I;16B", "1") and palette is None:
                return np.asarray(im).astype(np.int64)
            rgb = np.asarray(im.convert("RGB"), np.uint8)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise FileFormatError(f"not a readable label image: {p} ({type(e).__name__})") from None
    if palette is None:
        if np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2]):
            return rgb[..., 0].astype(np.int64)  # grey stored as RGB: the values are the ids
        raise FileFormatError(f"{p}: a colour label image needs a palette (colour -> class); pass palette= "
                              "or a class_dict.csv of name,r,g,b rows")
    lut = _palette_dict(palette)
    packed = (rgb[..., 0].astype(np.int64) << 16) | (rgb[..., 1].astype(np.int64) << 8) | rgb[..., 2]
    colours, inverse = np.unique(packed, return_inverse=True)
    ids = np.empty(len(colours), np.int64)
    for j, c in enumerate(colours):
        if int(c) not in lut:
            y, x = np.argwhere(packed == c)[0]
            rgb_s = f"({c >> 16}, {(c >> 8) & 255}, {c & 255})"
            raise FileFormatError(f"{p}: colour {rgb_s} at pixel (x={x}, y={y}) is not in the palette of "
                                  f"{len(lut)} class colours; add it to the palette or fix the mask")
        ids[j] = lut[int(c)]
    return ids[inverse.reshape(packed.shape)]


def write_label_png(path, labels: np.ndarray, *, palette=None) -> Path:
    """Write class ids (H, W) in 0..255 as an index PNG (atomically) with `palette` (default VOC's)."""
    from PIL import Image

    a = np.asarray(labels)
    if a.ndim != 2:
        raise InputError(f"labels must be (H, W), got shape {a.shape}")
    if a.size and (a.min() < 0 or a.max() > 255):
        raise InputError(f"an index PNG holds ids 0..255, got {a.min()}..{a.max()}")
    pal = voc_palette() if palette is None else np.asarray(palette, np.uint8).reshape(-1, 3)
    full = np.zeros((256, 3), np.uint8)
    full[: min(256, len(pal))] = pal[:256]
    im = Image.fromarray(a.astype(np.uint8), mode="L").convert("P")
    im.putpalette(full.ravel().tolist())
    with atomic_write(path) as f:
        im.save(f, format="PNG")
    return Path(path)


def read_class_colours(path) -> tuple[list[str], dict[tuple[int, int, int], int]]:
    """A CamVid-style class_dict.csv (`name,r,g,b` rows, optional header): names and {colour: class id}."""
    p = Path(path)
    if not p.is_file():
        raise MissingFileError(f"class colour file not found: {p}")
    names, colours = [], {}
    try:
        rows = list(csv.reader(p.read_text("utf-8-sig").splitlines()))
    except UnicodeDecodeError:
        raise FileFormatError(f"{p}: not a text file of name,r,g,b rows") from None
    for n, row in enumerate(rows, start=1):
        if not row or not "".join(row).strip():
            continue
        try:
            r, g, b = (int(v) for v in row[1:4])
            if len(row) < 4 or not all(0 <= v <= 255 for v in (r, g, b)):
                raise ValueError
        except ValueError:
            if n == 1:
                continue  # a header row
            msg = f"{p}: row {n} should be name,r,g,b with 0..255 colours, got {','.join(row)!r}"
            raise FileFormatError(msg) from None
        if (r, g, b) in colours:
            raise FileFormatError(f"{p}: row {n}: colour ({r}, {g}, {b}) is given to two classes")
        colours[(r, g, b)] = len(names)
        names.append(row[0].strip())
    if not names:
        raise FileFormatError(f"{p}: no name,r,g,b rows")
    return names, colours

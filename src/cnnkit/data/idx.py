"""The IDX format of MNIST (and Fashion-MNIST, KMNIST, EMNIST): read files, find them in a folder.

An IDX file is: two zero bytes, a type byte, a byte giving the number of dimensions, one big-endian uint32
per dimension, then the values, big-endian, row-major. Files may be gzipped (`.gz`).
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from cnnkit.errors import FileFormatError, InputError, MissingFileError

# type byte -> big-endian numpy dtype
IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | Path) -> np.ndarray:
    """Read one IDX file (optionally gzipped) as a native-endian numpy array.

    Raises:
        MissingFileError: no such file.
        FileFormatError: not IDX (bad magic or type), or shorter than its header says.
    """
    p = Path(path)
    if not p.is_file():
        raise MissingFileError(f"IDX file not found: {p}")
    try:
        opener = gzip.open if p.suffix == ".gz" else open
        with opener(p, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as e:
        raise FileFormatError(f"cannot read IDX file {p} ({e})") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in IDX_TYPES:
        raise FileFormatError(f"not an IDX file: {p} (bad magic number {data[:4].hex() or 'empty'})")
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise FileFormatError(f"truncated IDX file: {p} (header cut short)")
    dims = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    dtype = np.dtype(IDX_TYPES[data[2]])
    need = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(data) - header < need:
        raise FileFormatError(f"truncated IDX file: {p} (expected {need} bytes of values for shape {dims}, "
                              f"found {len(data) - header})")
    arr = np.frombuffer(data, dtype=dtype, count=need // dtype.itemsize, offset=header).reshape(dims)
    return arr.astype(dtype.newbyteorder("="))


def _pair_label_file(images: Path) -> Path:
    name = images.name
    for a, b in (("images-idx3", "labels-idx1"), ("images.idx3", "labels.idx1"), ("images", "labels")):
        if a in name:
            candidate = images.with_name(name.replace(a, b))
            if candidate.exists():
                return candidate
            gz = candidate.with_name(candidate.name + ".gz") if candidate.suffix != ".gz" else None
            if gz is not None and gz.exists():
                return gz
    raise MissingFileError(f"no labels file beside {images} (expected e.g. {name.replace('images', 'labels')})")


def is_idx_source(p: Path) -> bool:
    """Whether `p` is an IDX images file or a folder holding one."""
    if p.is_file():
        return "idx" in p.name and "images" in p.name or _has_idx_magic(p)
    return p.is_dir() and any(_idx_images(p))


def _has_idx_magic(p: Path) -> bool:
    try:
        with open(p, "rb") as f:
            head = f.read(4)
    except OSError:
        return False
    return len(head) == 4 and head[0] == 0 and head[1] == 0 and head[2] in IDX_TYPES and 1 <= head[3] <= 4


def _idx_images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and "images" in p.name and "idx3" in p.name)


def read_idx_pair(images_path: Path, labels_path: Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, H, W) uint8 and labels (N,) int64 from an IDX images file and its labels file."""
    images = read_idx(images_path)
    labels = read_idx(labels_path or _pair_label_file(images_path))
    if images.ndim not in (3, 4):
        raise FileFormatError(f"{images_path}: expected images of 3 dimensions (N, H, W), got shape {images.shape}")
    if labels.ndim != 1 or len(labels) != len(images):
        raise FileFormatError(
            f"{images_path}: {len(images)} images but the labels file holds shape {labels.shape}; they must pair up"
        )
    if images.dtype != np.uint8:
        raise InputError(f"{images_path}: images are {images.dtype}, only 8-bit (ubyte) IDX images are supported")
    if labels.min(initial=0) < 0:
        raise FileFormatError(f"{labels_path or images_path}: negative class labels")
    return images, labels.astype(np.int64)


def find_idx_files(p: Path) -> dict[str, Path]:
    """{"train": images file, "test": images file} found at `p` (a folder, or one images file = "train")."""
    if p.is_file():
        return {"train": p}
    found: dict[str, Path] = {}
    for f in _idx_images(p):
        split = "test" if f.name.startswith(("t10k", "test")) else "train"
        if split in found:
            raise InputError(f"{p}: two IDX image files for the {split} split ({found[split].name}, {f.name})")
        found[split] = f
    if not found:
        raise MissingFileError(f"no IDX images file (*images-idx3-ubyte*) in {p}")
    return found

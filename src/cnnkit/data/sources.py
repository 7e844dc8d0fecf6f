"""Where images come from: an image folder, a CSV of `path,label`, MNIST IDX files, CIFAR-10 batches.

Each reader returns a `Pool`: a store of images, the label of each, the class names, and the split the
source itself defines when it has one (MNIST's t10k files, CIFAR's test_batch, a folder with train/ val/
test/ sub-folders).

Bad input (documented choice): an image that cannot be decoded is skipped with a `DataWarning` naming it,
or stops the load with `FileFormatError` when `strict=True`. A class folder with no readable image is
dropped with a warning when other classes have images (`InputError` when `strict=True`, or when no class
has any). A CSV row whose file is missing always raises `MissingFileError` naming the row and the path:
a listing that points nowhere is a mistake to fix, not data to skip.
"""

from __future__ import annotations

import csv
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from cnnkit.data.dataset import FileStore
from cnnkit.errors import FileFormatError, InputError, MissingFileError
from cnnkit.io import IMAGE_SUFFIXES

SPLIT_DIRS = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}


class DataWarning(UserWarning):
    """Something in the data was skipped (an unreadable image, an empty class)."""


@dataclass
class Pool:
    """Every image a source holds, before splitting.

    Attributes:
        store: ArrayStore or FileStore holding the images.
        targets: class index of every image, int64 (N,).
        classes: class names.
        official: the source's own split as {"train": idx, "val": idx?, "test": idx?}, or None.
        stats: fixed (mean, std) for the built-ins; None means "compute on the train split".
    """

    store: object
    targets: np.ndarray
    classes: list[str]
    official: dict[str, np.ndarray] | None = None
    stats: tuple | None = None
    sizes: list[tuple[int, int]] = field(default_factory=list)  # (width, height) of every file, when known


def probe_image(path: Path) -> tuple[int, int]:
    """(width, height) of an image file, after checking it decodes; raises FileFormatError otherwise.

    PNG and most formats are checked by PIL's `verify` (chunk CRCs, no decoding); JPEG is decoded at 1/8
    scale, which reads the whole stream, so a truncated JPEG is caught here and not mid-training.
    """
    from PIL import Image

    try:
        with Image.open(path) as im:
            size = im.size
            if im.format == "JPEG":
                im.draft("L", (max(1, size[0] // 8), max(1, size[1] // 8)))
                im.load()
            else:
                im.verify()
    except (OSError, SyntaxError, ValueError) as e:
        raise FileFormatError(f"not a readable image: {path} ({type(e).__name__}: {e})") from None
    return size


def _probe_all(paths: list[Path], strict: bool, what: list[str]) -> list[tuple[int, int] | None]:
    """Probe every path; None for an unreadable one (warned), or raise at the first when strict."""
    sizes: list[tuple[int, int] | None] = []
    bar = tqdm(paths, desc="checking images", unit="img", leave=False, disable=len(paths) < 2000)
    for path, label in zip(bar, what, strict=True):
        try:
            sizes.append(probe_image(path))
        except FileFormatError as e:
            if strict:
                msg = f"{e}{label}; remove or replace it, or drop --strict (strict=False) to skip it with a warning"
                raise FileFormatError(msg) from None
            warnings.warn(f"skipping unreadable image {path}{label}", DataWarning, stacklevel=4)
            sizes.append(None)
    return sizes


def _list_images(folder: Path) -> list[Path]:
    return sorted(
        p
        for p in folder.rglob("*")
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not any(part.startswith(".") for part in p.parts)
    )


def _subdirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def read_image_folder(root: Path, *, in_chans: int, image_size: int | None, strict: bool) -> Pool:
    """An image folder: one sub-folder per class (`root/cat/1.png`), or `root/{train,val,test}/cat/1.png`."""
    subdirs = _subdirs(root)
    if not subdirs:
        loose = _list_images(root)
        hint = f"found {len(loose)} image(s) directly inside; " if loose else ""
        raise InputError(f"{root}: expected one sub-folder per class; {hint}put each class's images in root/<class>/")
    names = [d.name.lower() for d in subdirs]
    presplit = all(n in SPLIT_DIRS for n in names) and "train" in names
    groups = {SPLIT_DIRS[d.name.lower()]: d for d in subdirs} if presplit else {"all": root}

    classes = sorted({c.name for g in groups.values() for c in _subdirs(g)})
    paths: list[Path] = []
    targets: list[int] = []
    split_of: list[str] = []
    for split, folder in groups.items():
        for k, cls in enumerate(classes):
            files = _list_images(folder / cls) if (folder / cls).is_dir() else []
            paths += files
            targets += [k] * len(files)
            split_of += [split] * len(files)
    sizes = _probe_all(paths, strict, [""] * len(paths))
    keep = [i for i, s in enumerate(sizes) if s is not None]

    counts = np.bincount(np.asarray([targets[i] for i in keep], dtype=np.int64), minlength=len(classes))
    empty = [c for c, n in zip(classes, counts, strict=True) if n == 0]
    if len(empty) == len(classes):
        raise InputError(f"{root}: no readable images in any class folder ({', '.join(classes)})")
    if empty:
        listed = ", ".join(str(root / c) for c in empty)
        if strict:
            raise InputError(f"empty class folder(s): {listed}; add images or remove the folder(s)")
        warnings.warn(f"skipping empty class folder(s) {listed}", DataWarning, stacklevel=3)
    kept_classes = [c for c in classes if c not in empty]
    remap = {classes.index(c): k for k, c in enumerate(kept_classes)}
    keep = [i for i in keep if targets[i] in remap]

    store = FileStore([paths[i] for i in keep], in_chans, image_size)
    pool_targets = np.asarray([remap[targets[i]] for i in keep], dtype=np.int64)
    official = None
    if presplit:
        which = np.asarray([split_of[i] for i in keep])
        official = {s: np.flatnonzero(which == s) for s in groups}
    return Pool(store, pool_targets, kept_classes, official, sizes=[sizes[i] for i in keep])


_HEADER_WORDS = {"path", "file", "filename", "image", "image_path", "filepath"}


def read_csv(csv_path: Path, *, in_chans: int, image_size: int | None, strict: bool) -> Pool:
    """A CSV of `path,label` rows (an optional header row); paths are relative to the CSV's folder."""
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as f:
            rows = list(csv.reader(f))
    except UnicodeDecodeError:
        raise FileFormatError(f"{csv_path}: not a text CSV file (expected rows of path,label)") from None
    entries: list[tuple[int, Path, str]] = []
    for n, row in enumerate(rows, start=1):
        cells = [c.strip() for c in row]
        if not any(cells):
            continue
        if n == 1 and cells[0].lower() in _HEADER_WORDS:
            continue
        if len(cells) < 2 or not cells[0] or not cells[1]:
            raise FileFormatError(f"{csv_path}: row {n} should be `path,label`, got {','.join(row)!r}")
        path = Path(cells[0])
        path = path if path.is_absolute() else csv_path.parent / path
        if not path.is_file():
            raise MissingFileError(f"{csv_path}: row {n}: image not found: {cells[0]} (looked for {path})")
        entries.append((n, path, cells[1]))
    if not entries:
        raise InputError(f"{csv_path}: no rows of path,label")

    sizes = _probe_all([p for _, p, _ in entries], strict, [f" (row {n} of {csv_path})" for n, _, _ in entries])
    keep = [e for e, s in zip(entries, sizes, strict=True) if s is not None]
    labels = sorted({lab for _, _, lab in keep}, key=_label_key)
    index = {lab: k for k, lab in enumerate(labels)}
    store = FileStore([p for _, p, _ in keep], in_chans, image_size)
    targets = np.asarray([index[lab] for _, _, lab in keep], dtype=np.int64)
    return Pool(store, targets, labels, sizes=[s for s in sizes if s is not None])


def _label_key(label: str):
    # numeric labels sort as numbers ("2" before "10"), names alphabetically, numbers first
    try:
        return (0, float(label), label)
    except ValueError:
        return (1, 0.0, label)

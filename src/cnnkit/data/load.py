"""`load_dataset`: one entry point for every source of labelled images."""

from __future__ import annotations

import functools
import os
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from cnnkit.data import builtin as _builtin
from cnnkit.data.cifar import is_cifar_folder, read_cifar_folder
from cnnkit.data.convert import channel_stats, check_in_chans, resize_uint8, to_channels
from cnnkit.data.dataset import ArrayStore, ImageDataset
from cnnkit.data.idx import find_idx_files, is_idx_source, read_idx_pair
from cnnkit.data.sources import Pool, read_csv, read_image_folder
from cnnkit.data.splits import check_split_args, stratified_split
from cnnkit.errors import FileFormatError, InputError, MissingFileError


def load_dataset(
    source: str,
    *,
    split: str = "train",
    image_size: int | None = None,
    in_chans: int = 3,
    seed: int = 0,
    val_fraction: float = 0.15,
    test_fraction: float = 0.15,
    strict: bool = False,
    transform: Callable | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
) -> ImageDataset:
    """Load one split of a labelled image data set.

    `source` is, checked in this order: an existing path, which may be a `.csv` file of `path,label` rows
    (paths relative to the CSV), an MNIST IDX images file or a folder holding IDX files, a CIFAR python
    batch folder (`cifar-10-batches-py`), or an image folder with one sub-folder per class (optionally under
    `train/`, `val/`, `test/`); otherwise the name of a built-in set, "digits" or "shapes".

    Splits are stratified and depend only on `seed` (see `stratified_split`). A source that defines its own
    split keeps it: MNIST's t10k files and CIFAR's test_batch are "test", and "val" is then carved from the
    training part by `val_fraction`; a folder with train/ val/ test/ uses them as they are.

    Args:
        source: built-in name, folder, CSV, IDX file or folder, or CIFAR folder.
        split: "train", "val", "test" or "all".
        image_size: resize every image to image_size x image_size (bilinear); None keeps sizes (the
            built-ins: 32 for digits, 64 for shapes), and then a file data set must have one size throughout.
        in_chans: 1 or 3; grayscale and RGB are converted to it.
        seed: seed of the split.
        val_fraction: share of each class in "val".
        test_fraction: share of each class in "test" (ignored when the source has its own test split).
        strict: raise on an unreadable image or an empty class folder instead of warning and skipping.
        transform: applied to every image as a float tensor (C, H, W) in [0, 1], before normalisation;
            e.g. `cnnkit.augment.build_transform(...)`.
        mean, std: normalisation to use instead of the train split's (e.g. those stored in a checkpoint).

    Returns:
        The ImageDataset of the split.

    Raises:
        InputError: bad split, fractions, in_chans or image_size, or images of mixed sizes without image_size.
        MissingFileError, FileFormatError: a path that is missing or not what it should be.
        UnknownNameError: not a path and not a built-in (the message lists close matches).
    """
    check_split_args(split, val_fraction, test_fraction)
    check_in_chans(in_chans)
    if image_size is not None and (not isinstance(image_size, (int, np.integer)) or image_size < 1):
        raise InputError(f"image_size must be a positive whole number or None, got {image_size!r}")

    pool, name = _open_pool(str(source), in_chans=in_chans, image_size=image_size, strict=strict)
    if image_size is None and pool.sizes and len(set(pool.sizes)) > 1:
        sizes = sorted(set(pool.sizes))
        raise InputError(
            f"{name}: images have different sizes ({_wxh(sizes[0])}, {_wxh(sizes[-1])}, ...); "
            "pass image_size (--image-size) to resize them to one"
        )
    indices = _split_indices(pool, seed=seed, val_fraction=val_fraction, test_fraction=test_fraction)
    if mean is None or std is None:
        # fixed for the built-ins; else from the training images only, so val/test never leak into training
        stats = pool.stats if pool.stats is not None else pool.store.stats(indices["train"], seed)
        mean = stats[0] if mean is None else mean
        std = stats[1] if std is None else std
    mean, std = tuple(float(m) for m in mean), tuple(float(s) for s in std)
    if len(mean) != in_chans or len(std) != in_chans:
        raise InputError(f"mean and std need {in_chans} value(s) each, got {len(mean)} and {len(std)}")
    if min(std) <= 0:
        raise InputError(f"std values must be positive, got {list(std)}")
    size = image_size or (pool.store.images.shape[1] if isinstance(pool.store, ArrayStore) else None)
    if size is None and pool.sizes and pool.sizes[0][0] == pool.sizes[0][1]:
        size = pool.sizes[0][0]  # files all of one square size: report it
    return ImageDataset(
        pool.store, indices[split], pool.targets, pool.classes, in_chans=in_chans, image_size=size,
        mean=mean, std=std, transform=transform, source=name, split=split,
    )


def _wxh(size: tuple[int, int]) -> str:
    return f"{size[0]}x{size[1]}"


# Loading train, val and test one after the other reads the same source three times; the last pools read
# are kept, keyed by the source's modification times, so a changed folder or file is read again.
_POOL_CACHE: OrderedDict[tuple, Pool] = OrderedDict()
_POOL_CACHE_SIZE = 2


def _signature(p: Path) -> tuple:
    """Modification times of a file, or of a folder tree's folders and top-level files (not every image)."""
    st = p.stat()
    if p.is_file():
        return ((str(p), st.st_mtime_ns, st.st_size),)
    sig = []
    for folder, dirs, files in os.walk(p):
        # the entry count too: two changes within one tick of the file system clock keep the same mtime
        sig.append((folder, os.stat(folder).st_mtime_ns, len(dirs) + len(files)))
        if folder == str(p):  # IDX files, CIFAR batches, CSVs live at the top
            for f in sorted(files):
                fs = os.stat(os.path.join(folder, f))
                sig.append((f, fs.st_mtime_ns, fs.st_size))
    return tuple(sig)


def _open_pool(source: str, *, in_chans: int, image_size: int | None, strict: bool) -> tuple[Pool, str]:
    p = Path(source).expanduser()
    if not p.exists():
        return _open_source(source, p, in_chans=in_chans, image_size=image_size, strict=strict)
    key = (str(p.resolve()), _signature(p), in_chans, image_size, strict)
    if key in _POOL_CACHE:
        _POOL_CACHE.move_to_end(key)
        return _POOL_CACHE[key], str(p)
    pool, name = _open_source(source, p, in_chans=in_chans, image_size=image_size, strict=strict)
    _POOL_CACHE[key] = pool
    while len(_POOL_CACHE) > _POOL_CACHE_SIZE:
        _POOL_CACHE.popitem(last=False)
    return pool, name


def _open_source(source: str, p: Path, *, in_chans: int, image_size: int | None, strict: bool) -> tuple[Pool, str]:
    if p.exists():
        if p.is_file() and p.suffix.lower() == ".csv":
            return read_csv(p, in_chans=in_chans, image_size=image_size, strict=strict), str(p)
        if is_idx_source(p):
            return _idx_pool(p, in_chans, image_size), str(p)
        if is_cifar_folder(p):
            return _cifar_pool(p, in_chans, image_size), str(p)
        if p.is_dir():
            return read_image_folder(p, in_chans=in_chans, image_size=image_size, strict=strict), str(p)
        raise FileFormatError(
            f"{p}: not a data set (expected a folder of class sub-folders, a .csv of path,label, "
            "IDX files or CIFAR batches)"
        )
    if source in _builtin.list_builtins():
        return _builtin_pool(source, in_chans, image_size), source
    if any(sep in source for sep in "/\\") or Path(source).suffix:
        raise MissingFileError(f"data set not found: {source} (no such file or folder)")
    _builtin.get_builtin(source)  # raises UnknownNameError with the close matches
    raise AssertionError("unreachable")


@functools.lru_cache(maxsize=8)
def _builtin_arrays(name: str, in_chans: int, image_size: int | None):
    images, targets, classes = _builtin.get_builtin(name)(image_size)
    images = np.ascontiguousarray(to_channels(images, in_chans))
    images.setflags(write=False)
    # fixed constants: statistics of the whole pool, the same for every split and seed
    return images, targets, classes, channel_stats(images)


def _builtin_pool(name: str, in_chans: int, image_size: int | None) -> Pool:
    images, targets, classes, stats = _builtin_arrays(name, in_chans, image_size)
    return Pool(ArrayStore(images), targets, classes, stats=stats)


def _array_pool(images: np.ndarray, labels: np.ndarray, classes, official, in_chans, image_size) -> Pool:
    a = images[..., None] if images.ndim == 3 else images
    a = to_channels(a, in_chans)
    if image_size:
        a = resize_uint8(a, image_size)
    return Pool(ArrayStore(np.ascontiguousarray(a)), labels, classes, official)


def _idx_pool(p: Path, in_chans: int, image_size: int | None) -> Pool:
    files = find_idx_files(p)
    parts = {split: read_idx_pair(files[split]) for split in ("train", "test") if split in files}  # train first
    images = np.concatenate([x for x, _ in parts.values()])
    labels = np.concatenate([y for _, y in parts.values()])
    shapes = {x.shape[1:] for x, _ in parts.values()}
    if len(shapes) > 1:
        raise FileFormatError(f"{p}: the IDX image files hold images of different shapes {sorted(shapes)}")
    official = None
    if "train" in parts and "test" in parts:
        n_train = len(parts["train"][1])
        official = {"train": np.arange(n_train), "test": np.arange(n_train, len(labels))}
    classes = [str(k) for k in range(int(labels.max(initial=0)) + 1)]  # label k is class "k", even if unseen
    return _array_pool(images, labels, classes, official, in_chans, image_size)


def _cifar_pool(p: Path, in_chans: int, image_size: int | None) -> Pool:
    images, labels, classes, official = read_cifar_folder(p)
    return _array_pool(images, labels, classes, official, in_chans, image_size)


def _split_indices(pool: Pool, *, seed: int, val_fraction: float, test_fraction: float) -> dict[str, np.ndarray]:
    t = pool.targets
    if not pool.official:
        return stratified_split(t, seed=seed, val_fraction=val_fraction, test_fraction=test_fraction)
    off = pool.official
    base = off["train"]
    has_val, has_test = "val" in off, "test" in off
    # the source's own parts are kept; what it lacks is carved from its training part
    sub = stratified_split(
        t[base], seed=seed, val_fraction=0.0 if has_val else val_fraction,
        test_fraction=0.0 if has_test else test_fraction,
    )
    out = {
        "train": base[sub["train"]],
        "val": off["val"] if has_val else base[sub["val"]],
        "test": off["test"] if has_test else base[sub["test"]],
    }
    out["all"] = np.arange(len(t), dtype=np.int64)
    return {k: np.sort(np.asarray(v, dtype=np.int64)) for k, v in out.items()}

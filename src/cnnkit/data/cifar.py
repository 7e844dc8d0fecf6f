"""CIFAR-10 / CIFAR-100 "python version" batches, read without running arbitrary pickled code.

The batches are pickles of a dict {b"data": uint8 array (N, 3072), b"labels": [int], ...}. Plain
`pickle.load` would execute whatever a tampered file asks for, so `SafeUnpickler` resolves only the few
numpy callables an array needs; any other global in the file is refused with FileFormatError.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import numpy as np

from cnnkit.errors import FileFormatError, MissingFileError

CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def _allowed_globals() -> dict[tuple[str, str], object]:
    import codecs

    try:  # numpy >= 2 moved the pickling helpers to numpy._core; files written by numpy 1 name numpy.core
        from numpy._core import multiarray, numeric
    except ImportError:  # pragma: no cover - numpy 1
        from numpy.core import multiarray, numeric
    allowed: dict[tuple[str, str], object] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): codecs.encode,  # how protocol 2 stores bytes written by Python 3
    }
    for mod in ("numpy.core", "numpy._core"):
        allowed[(f"{mod}.multiarray", "_reconstruct")] = multiarray._reconstruct
        allowed[(f"{mod}.multiarray", "scalar")] = multiarray.scalar
        allowed[(f"{mod}.numeric", "_frombuffer")] = numeric._frombuffer
    return allowed


class SafeUnpickler(pickle.Unpickler):
    """An unpickler that builds only builtin containers and numpy arrays; any other class is refused."""

    _ALLOWED = None

    def find_class(self, module: str, name: str):
        if SafeUnpickler._ALLOWED is None:
            SafeUnpickler._ALLOWED = _allowed_globals()
        try:
            return SafeUnpickler._ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}") from None


def safe_unpickle(path: Path) -> object:
    """Unpickle `path` with SafeUnpickler (bytes kept as bytes, as Python 2 wrote them)."""
    try:
        data = path.read_bytes()
        return SafeUnpickler(io.BytesIO(data), encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as e:
        raise FileFormatError(f"not a CIFAR python batch, or one with unsafe content: {path} ({e})") from None


def _get(d: dict, key: str):
    return d.get(key.encode(), d.get(key)) if isinstance(d, dict) else None


def read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One batch file: images uint8 (N, 32, 32, 3) and labels int64 (N,)."""
    d = safe_unpickle(path)
    data = _get(d, "data")
    labels = _get(d, "labels")
    if labels is None:
        labels = _get(d, "fine_labels")  # CIFAR-100
    if data is None or labels is None:
        raise FileFormatError(f"{path}: a CIFAR batch needs 'data' and 'labels' entries")
    data = np.asarray(data)
    labels = np.asarray(labels, dtype=np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072 or len(labels) != len(data):
        raise FileFormatError(
            f"{path}: expected uint8 data (N, 3072) and N labels, got data {data.dtype}{data.shape}, "
            f"{len(labels)} labels"
        )
    # each row: 1024 red, then 1024 green, then 1024 blue values, row-major 32x32
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), labels


def is_cifar_folder(p: Path) -> bool:
    return p.is_dir() and (any(p.glob("data_batch_*")) or (p / "test_batch").is_file() or (p / "train").is_file()
                           and (p / "meta").is_file())


def read_cifar_folder(root: Path) -> tuple[np.ndarray, np.ndarray, list[str], dict[str, np.ndarray]]:
    """A `cifar-10-batches-py` folder (or CIFAR-100's `cifar-100-python`).

    Returns:
        images uint8 (N, 32, 32, 3), labels int64 (N,), class names, and the official split
        {"train": idx, "test": idx} (data_batch_* / train for train, test_batch / test for test).
    """
    train_files = sorted(root.glob("data_batch_*")) or ([root / "train"] if (root / "train").is_file() else [])
    test_files = [f for f in (root / "test_batch", root / "test") if f.is_file()]
    if not train_files and not test_files:
        raise MissingFileError(f"no CIFAR batches (data_batch_1 ..., test_batch) in {root}")
    parts = [(read_cifar_batch(f), "train") for f in train_files] + [(read_cifar_batch(f), "test") for f in test_files]
    images = np.concatenate([p[0][0] for p in parts])
    labels = np.concatenate([p[0][1] for p in parts])
    which = np.concatenate([[p[1]] * len(p[0][1]) for p in parts])
    classes = _class_names(root, int(labels.max(initial=0)) + 1)
    official = {s: np.flatnonzero(which == s) for s in ("train", "test") if (which == s).any()}
    if "train" not in official:  # only a test batch: split it like any other pool
        official = None
    return images, labels, classes, official


def _class_names(root: Path, n: int) -> list[str]:
    for meta_file, key in ((root / "batches.meta", "label_names"), (root / "meta", "fine_label_names")):
        if meta_file.is_file():
            names = _get(safe_unpickle(meta_file), key)
            if names and len(names) >= n:
                return [x.decode() if isinstance(x, bytes) else str(x) for x in names]
    return CIFAR10_CLASSES if n <= 10 else [str(k) for k in range(n)]

"""Reproducible, stratified train/val/test splits."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from cnnkit.errors import InputError

SPLITS = ("train", "val", "test", "all")


def check_split_args(split: str, val_fraction: float, test_fraction: float) -> None:
    """Raise InputError for an unknown split name or fractions that leave nothing to train on."""
    if split not in SPLITS:
        raise InputError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    for name, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0.0 <= value < 1.0:
            raise InputError(f"{name} must be in [0, 1), got {value}")
    if val_fraction + test_fraction >= 1.0:
        raise InputError(
            f"val_fraction + test_fraction = {val_fraction + test_fraction:g} leaves no training data; keep it below 1"
        )


def stratified_split(
    targets: Sequence[int] | np.ndarray, *, seed: int, val_fraction: float, test_fraction: float
) -> dict[str, np.ndarray]:
    """Split indices class by class so each split keeps the class proportions.

    Each class's indices are shuffled by a generator seeded from `seed`, then the first
    `round(n * test_fraction)` go to test, the next `round(n * val_fraction)` to val and the rest to
    train; a class with at least one image always keeps one for training. The result depends only on
    `targets` and `seed`, never on the order classes were found in.

    Args:
        targets: class index of every item.
        seed: seed of the shuffle.
        val_fraction: share of each class that goes to "val".
        test_fraction: share of each class that goes to "test".

    Returns:
        {"train": idx, "val": idx, "test": idx, "all": idx}, each a sorted int64 array.
    """
    t = np.asarray(targets, dtype=np.int64)
    parts: dict[str, list[np.ndarray]] = {"train": [], "val": [], "test": []}
    for c in np.unique(t):
        idx = np.flatnonzero(t == c)
        # one generator per class, so adding a class does not reshuffle the others
        rng = np.random.default_rng([seed, int(c)])
        idx = idx[rng.permutation(idx.size)]
        n_test = int(round(idx.size * test_fraction))
        n_val = int(round(idx.size * val_fraction))
        if n_test + n_val >= idx.size:  # tiny class: training needs at least one example
            overflow = n_test + n_val - (idx.size - 1)
            take_val = min(n_val, overflow)
            n_val -= take_val
            n_test -= overflow - take_val
        parts["test"].append(idx[:n_test])
        parts["val"].append(idx[n_test : n_test + n_val])
        parts["train"].append(idx[n_test + n_val :])
    out = {k: np.sort(np.concatenate(v)) if v else np.zeros(0, np.int64) for k, v in parts.items()}
    out["all"] = np.arange(t.size, dtype=np.int64)
    return out

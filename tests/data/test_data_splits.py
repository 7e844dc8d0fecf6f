"""Stratified splits: disjoint, complete, proportional per class, reproducible from the seed."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cnnkit.data import stratified_split
from cnnkit.data.splits import check_split_args
from cnnkit.errors import InputError


def _reference_counts(n: int, val: float, test: float) -> tuple[int, int, int]:
    """Obvious per-class sizes: round each share, but keep one image for training."""
    n_test, n_val = round(n * test), round(n * val)
    while n_test + n_val >= n and n_test + n_val > 0:
        if n_val > 0:
            n_val -= 1
        else:
            n_test -= 1
    return n - n_val - n_test, n_val, n_test


@settings(max_examples=40, deadline=None)
@given(
    counts=st.lists(st.integers(1, 40), min_size=1, max_size=6),
    val=st.floats(0, 0.4),
    test=st.floats(0, 0.4),
    seed=st.integers(0, 2**31),
)
def test_split_is_a_stratified_partition(counts, val, test, seed):
    targets = np.repeat(np.arange(len(counts)), counts)
    np.random.default_rng(seed).shuffle(targets)
    s = stratified_split(targets, seed=seed, val_fraction=val, test_fraction=test)
    joined = np.concatenate([s["train"], s["val"], s["test"]])
    assert sorted(joined.tolist()) == list(range(len(targets)))  # disjoint and complete
    assert np.array_equal(s["all"], np.arange(len(targets)))
    for c, n in enumerate(counts):
        got = tuple(int((targets[s[k]] == c).sum()) for k in ("train", "val", "test"))
        assert got == _reference_counts(n, val, test)


def test_same_seed_same_split_other_seed_other_split():
    targets = np.repeat(np.arange(4), 50)
    a = stratified_split(targets, seed=3, val_fraction=0.2, test_fraction=0.2)
    b = stratified_split(targets, seed=3, val_fraction=0.2, test_fraction=0.2)
    c = stratified_split(targets, seed=4, val_fraction=0.2, test_fraction=0.2)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["test"], c["test"])


def test_split_does_not_depend_on_other_classes():
    # adding a class must not reshuffle the existing ones (one generator per class)
    t1 = np.repeat(np.arange(3), 30)
    t2 = np.concatenate([t1, np.full(30, 3)])
    a = stratified_split(t1, seed=0, val_fraction=0.2, test_fraction=0.2)
    b = stratified_split(t2, seed=0, val_fraction=0.2, test_fraction=0.2)
    assert np.array_equal(a["test"], b["test"][b["test"] < 90])


@pytest.mark.parametrize(
    "split,val,test,match",
    [("training", 0.1, 0.1, "unknown split"), ("train", -0.1, 0.1, "val_fraction"),
     ("train", 0.6, 0.5, "no training data"), ("train", 0.1, 1.0, "test_fraction")],
)
def test_bad_split_arguments_raise(split, val, test, match):
    with pytest.raises(InputError, match=match):
        check_split_args(split, val, test)

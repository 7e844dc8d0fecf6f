"""Argument checks shared by the scratch ops: every mistake becomes one `InputError` that names the argument."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from cnnkit.errors import InputError
from cnnkit.shapes import check_int


def float_dtype(*arrays) -> np.dtype:
    """The dtype the op computes in: the inputs' common float type (float32 stays float32); integers give float64."""
    dtype = np.result_type(*arrays)
    return dtype if np.issubdtype(dtype, np.floating) else np.dtype(np.float64)


def activations(x, name: str, dtype: np.dtype) -> np.ndarray:
    """`x` as an (m, n_H, n_W, n_C) array of `dtype`."""
    x = np.asarray(x)
    if x.ndim != 4:
        raise InputError(
            f"{name} must have 4 dimensions (m, n_H, n_W, n_C), got shape {x.shape}; "
            f"for a single example add the batch axis with {name}[None]"
        )
    if min(x.shape) < 1:
        raise InputError(f"{name} has an empty dimension: shape {x.shape}")
    return x.astype(dtype, copy=False)


def filters(W, n_C_prev: int, dtype: np.dtype, what: str = "A_prev") -> np.ndarray:
    """`W` as an (f, f, n_C_prev, n_C) array whose input channels match the activations'."""
    W = np.asarray(W)
    if W.ndim != 4 or min(W.shape) < 1:
        raise InputError(f"W must have shape (f, f, n_C_prev, n_C), got {W.shape}")
    if W.shape[2] != n_C_prev:
        raise InputError(
            f"filters W have {W.shape[2]} input channels (W.shape[2]) but {what} has {n_C_prev} channels; "
            f"W must be (f, f, {n_C_prev}, n_C)"
        )
    return W.astype(dtype, copy=False)


def bias(b, n_C: int, dtype: np.dtype) -> np.ndarray:
    """`b` as a (1, 1, 1, n_C) array; a flat (n_C,) vector is accepted too."""
    b = np.asarray(b)
    if b.shape not in ((1, 1, 1, n_C), (n_C,)):
        raise InputError(f"bias b must have shape (1, 1, 1, {n_C}) to match the {n_C} filters, got {b.shape}")
    return b.reshape(1, 1, 1, n_C).astype(dtype, copy=False)


def hyper(hparameters, keys: tuple[str, ...], optional: Mapping[str, int] | None = None) -> list[int]:
    """Read whole-number hyper-parameters from the dict: strides and sizes >= 1, paddings >= 0."""
    if not isinstance(hparameters, Mapping):
        raise InputError(f"hparameters must be a dict with keys {list(keys)}, got {type(hparameters).__name__}")
    missing = [k for k in keys if k not in hparameters]
    if missing:
        raise InputError(f"hparameters is missing {missing}; it needs {list(keys)}, got keys {list(hparameters)}")
    values = []
    for key in (*keys, *(optional or {})):
        value = hparameters.get(key, (optional or {}).get(key))
        minimum = 0 if "pad" in key else 1
        values.append(check_int(value, f"hparameters[{key!r}]", minimum))
    return values


def gradient(dZ, expected: tuple[int, ...], name: str, dtype: np.dtype) -> np.ndarray:
    """An upstream gradient, which must have the shape of the forward output."""
    dZ = np.asarray(dZ)
    if dZ.shape != tuple(expected):
        raise InputError(f"{name} must have the shape of the forward output {tuple(expected)}, got {dZ.shape}")
    return dZ.astype(dtype, copy=False)


def windows(x: np.ndarray, fh: int, fw: int, stride: int, n_H: int, n_W: int) -> np.ndarray:
    """Every (fh, fw) window of `x` at the given stride, as a read-only view, no copy.

    Args:
        x: (m, H, W, C) array, large enough for `n_H` x `n_W` windows.

    Returns:
        (m, n_H, n_W, fh, fw, C) view: ``out[:, h, w] == x[:, h*s : h*s+fh, w*s : w*s+fw]``.
    """
    view = sliding_window_view(x, (fh, fw), axis=(1, 2))  # (m, H-fh+1, W-fw+1, C, fh, fw)
    view = view[:, : (n_H - 1) * stride + 1 : stride, : (n_W - 1) * stride + 1 : stride]
    return view.transpose(0, 1, 2, 4, 5, 3)


def offset_slices(i: int, j: int, stride: int, n_H: int, n_W: int) -> tuple[slice, slice, slice, slice]:
    """Index of the input pixels that kernel offset (i, j) touches, one per output pixel: ``x[:, i + s*h, j + s*w]``."""
    return (slice(None), slice(i, i + (n_H - 1) * stride + 1, stride), slice(j, j + (n_W - 1) * stride + 1, stride),
            slice(None))

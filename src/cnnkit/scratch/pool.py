"""Pooling forward and backward (max, average, global average), in the course's NumPy conventions, vectorised.

Shapes: ``A_prev`` (m, n_H_prev, n_W_prev, n_C), ``hparameters = {"f": f, "stride": s}``, output
(m, n_H, n_W, n_C) with ``n_H = floor((n_H_prev - f) / s) + 1``. Pooling has no padding, as in the course.

The window is never materialised: the f x f kernel offsets are looped over (f*f steps, each a strided slice of the
whole batch), which is both the vectorised form and the cheapest in memory.

Ties in max pooling: the course's mask, ``x == max(x)``, routes the gradient to *every* element equal to the maximum
of its window, and that is the default here (``ties="all"``) so a learner's own code compares equal. PyTorch's
``max_pool2d`` routes it to one element only, the first maximum in row-major order of the window; ``ties="first"``
does the same. On random floats ties never happen and both agree; after a ReLU (windows of zeros) they differ.
"""

from __future__ import annotations

import numpy as np

from cnnkit.errors import InputError
from cnnkit.scratch import _checks
from cnnkit.shapes import pool_output_size

__all__ = [
    "create_mask_from_window",
    "distribute_value",
    "global_avg_pool_backward",
    "global_avg_pool_forward",
    "pool_backward",
    "pool_forward",
]

_MODES = ("max", "average")
_TIES = ("all", "first")


def create_mask_from_window(x: np.ndarray) -> np.ndarray:
    """Boolean mask of where the maximum of `x` is (every position, if it is tied).

    Args:
        x: one (f, f) window.

    Returns:
        Array of `x`'s shape, True where ``x == max(x)``.
    """
    x = np.asarray(x)
    return x == np.max(x)


def distribute_value(dz, shape: tuple[int, int]) -> np.ndarray:
    """Spread the gradient `dz` of an average evenly over a window of the given shape.

    Args:
        dz: one number, the gradient of one average-pooled output.
        shape: (n_H, n_W) of the window.

    Returns:
        (n_H, n_W) array whose every element is ``dz / (n_H * n_W)``, in `dz`'s float type (float64 for Python
        numbers).
    """
    n_H, n_W = (int(v) for v in shape)
    dz = np.asarray(dz)
    dtype = _checks.float_dtype(dz)
    return np.full((n_H, n_W), dz.astype(dtype) / dtype.type(n_H * n_W), dtype=dtype)


def _pool_args(A_prev, hparameters, mode):
    if mode not in _MODES:
        raise InputError(f"mode must be one of {list(_MODES)}, got {mode!r}")
    dtype = _checks.float_dtype(A_prev)
    A_prev = _checks.activations(A_prev, "A_prev", dtype)
    f, stride = _checks.hyper(hparameters, ("f", "stride"))
    try:
        n_H = pool_output_size(A_prev.shape[1], f, stride=stride)
        n_W = pool_output_size(A_prev.shape[2], f, stride=stride)
    except InputError as e:
        raise InputError(f"pooling A_prev {A_prev.shape}: {e}") from None
    return A_prev, f, stride, n_H, n_W


def _pool(A_prev: np.ndarray, f: int, stride: int, n_H: int, n_W: int, mode: str) -> np.ndarray:
    """Max or mean of every window, built offset by offset."""
    first = A_prev[_checks.offset_slices(0, 0, stride, n_H, n_W)]
    A = first.copy()
    for i in range(f):
        for j in range(f):
            if i == 0 and j == 0:
                continue
            part = A_prev[_checks.offset_slices(i, j, stride, n_H, n_W)]
            if mode == "max":
                np.maximum(A, part, out=A)
            else:
                A += part
    if mode == "average":
        A /= A.dtype.type(f * f)
    return A


def pool_forward(A_prev: np.ndarray, hparameters: dict, mode: str = "max") -> tuple[np.ndarray, tuple]:
    """Forward pass of a pooling layer.

    Args:
        A_prev: (m, n_H_prev, n_W_prev, n_C) input.
        hparameters: ``{"f": f, "stride": s}``.
        mode: "max" or "average".

    Returns:
        A: (m, n_H, n_W, n_C) with ``n_H = floor((n_H_prev - f) / s) + 1``.
        cache: ``(A_prev, hparameters)`` for `pool_backward`.

    Raises:
        InputError: unknown mode, a window larger than the input, a stride or window below 1.
    """
    A_prev, f, stride, n_H, n_W = _pool_args(A_prev, hparameters, mode)
    return _pool(A_prev, f, stride, n_H, n_W, mode), (A_prev, hparameters)


def pool_backward(dA: np.ndarray, cache: tuple, mode: str = "max", *, ties: str = "all") -> np.ndarray:
    """Backward pass of a pooling layer.

    Args:
        dA: (m, n_H, n_W, n_C) gradient of the cost with respect to the pooling output.
        cache: what `pool_forward` returned.
        mode: "max" or "average", as in the forward pass.
        ties: max pooling only: "all" (the course's mask: every tied maximum gets the gradient) or "first" (as
            PyTorch: only the first maximum of the window in row-major order). See the module docstring.

    Returns:
        dA_prev: (m, n_H_prev, n_W_prev, n_C) gradient with respect to the pooling input.
    """
    if ties not in _TIES:
        raise InputError(f"ties must be one of {list(_TIES)}, got {ties!r}")
    A_prev, hparameters = cache
    A_prev, f, stride, n_H, n_W = _pool_args(A_prev, hparameters, mode)
    dA = _checks.gradient(dA, (A_prev.shape[0], n_H, n_W, A_prev.shape[3]), "dA", A_prev.dtype)
    dA_prev = np.zeros_like(A_prev)
    if mode == "average":
        share = dA / dA.dtype.type(f * f)  # distribute_value, for every window at once
        for i in range(f):
            for j in range(f):
                dA_prev[_checks.offset_slices(i, j, stride, n_H, n_W)] += share
        return dA_prev

    A = _pool(A_prev, f, stride, n_H, n_W, "max")
    taken = np.zeros(A.shape, dtype=bool)  # windows whose maximum already got the gradient (ties="first")
    for i in range(f):  # row-major over the window, the order in which PyTorch picks its first maximum
        for j in range(f):
            index = _checks.offset_slices(i, j, stride, n_H, n_W)
            mask = A_prev[index] == A  # create_mask_from_window, for every window at once
            if ties == "first":
                mask &= ~taken
                taken |= mask
            dA_prev[index] += mask * dA
    return dA_prev


def global_avg_pool_forward(A_prev: np.ndarray, *, keepdims: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Global average pooling: the mean of every channel over the whole image.

    Args:
        A_prev: (m, n_H, n_W, n_C) input.
        keepdims: return (m, 1, 1, n_C) instead of (m, n_C).

    Returns:
        A: (m, n_C), or (m, 1, 1, n_C) with `keepdims`.
        cache: `A_prev`, for `global_avg_pool_backward`.
    """
    A_prev = _checks.activations(A_prev, "A_prev", _checks.float_dtype(A_prev))
    return A_prev.mean(axis=(1, 2), keepdims=keepdims), A_prev


def global_avg_pool_backward(dA: np.ndarray, cache: np.ndarray) -> np.ndarray:
    """Backward pass of global average pooling: every pixel gets ``dA / (n_H * n_W)`` of its channel.

    Args:
        dA: (m, n_C) or (m, 1, 1, n_C) gradient with respect to the pooled output.
        cache: what `global_avg_pool_forward` returned.

    Returns:
        dA_prev: (m, n_H, n_W, n_C).
    """
    A_prev = cache
    m, n_H, n_W, n_C = A_prev.shape
    dA = np.asarray(dA)
    if dA.shape not in ((m, n_C), (m, 1, 1, n_C)):
        raise InputError(f"dA must have shape ({m}, {n_C}) or ({m}, 1, 1, {n_C}), got {dA.shape}")
    share = dA.reshape(m, 1, 1, n_C).astype(A_prev.dtype) / A_prev.dtype.type(n_H * n_W)
    return np.broadcast_to(share, A_prev.shape).copy()

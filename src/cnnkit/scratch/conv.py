"""Convolution forward and backward, in the course's NumPy conventions, vectorised.

Shapes (the course's names):

- activations ``A_prev``: (m, n_H_prev, n_W_prev, n_C_prev), channels last;
- filters ``W``: (f, f, n_C_prev, n_C); biases ``b``: (1, 1, 1, n_C);
- ``hparameters = {"stride": s, "pad": p}``; output ``Z``: (m, n_H, n_W, n_C) with
  ``n_H = floor((n_H_prev + 2p - f) / s) + 1``.

The computation is im2col: every f x f x n_C_prev window becomes one row of a matrix, and the whole layer is one
matrix product with the filters reshaped to (f*f*n_C_prev, n_C). The backward pass is the same product transposed;
only the scatter of window gradients back onto the input loops, over the f*f kernel offsets (never over examples or
pixels). A 1x1 convolution is the f = 1 case: the same product applied to every pixel.

The computation runs in the inputs' float type: float32 in, float32 out.
"""

from __future__ import annotations

import numpy as np

from cnnkit.errors import InputError
from cnnkit.scratch import _checks
from cnnkit.shapes import check_int, conv_output_size

__all__ = ["conv_backward", "conv_forward", "conv_single_step", "zero_pad"]


def zero_pad(X: np.ndarray, pad: int) -> np.ndarray:
    """Pad the height and width of every image of a batch with zeros.

    Args:
        X: (m, n_H, n_W, n_C) batch.
        pad: zeros added on each side of the height and width axes.

    Returns:
        (m, n_H + 2*pad, n_W + 2*pad, n_C), same dtype as `X`.
    """
    X = np.asarray(X)
    if X.ndim != 4:
        raise InputError(f"X must have 4 dimensions (m, n_H, n_W, n_C), got shape {X.shape}")
    pad = check_int(pad, "pad", 0)
    return np.pad(X, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="constant", constant_values=0)


def conv_single_step(a_slice_prev: np.ndarray, W: np.ndarray, b) -> np.floating:
    """One filter applied at one position: ``sum(a_slice_prev * W) + b``.

    Args:
        a_slice_prev: (f, f, n_C_prev) slice of the input.
        W: (f, f, n_C_prev) weights of one filter.
        b: the filter's bias, any array of one element (e.g. shape (1, 1, 1)).

    Returns:
        A NumPy scalar in the inputs' float type.
    """
    a_slice_prev, W, b = np.asarray(a_slice_prev), np.asarray(W), np.asarray(b)
    if a_slice_prev.shape != W.shape:
        raise InputError(f"a_slice_prev {a_slice_prev.shape} and W {W.shape} must have the same shape")
    if b.size != 1:
        raise InputError(f"b must hold one number (the filter's bias), got shape {b.shape}")
    dtype = _checks.float_dtype(a_slice_prev, W, b)
    return (np.sum(a_slice_prev * W, dtype=dtype) + b.reshape(()).astype(dtype))[()]


def _im2col(A_pad: np.ndarray, fh: int, fw: int, stride: int, n_H: int, n_W: int) -> np.ndarray:
    """(m*n_H*n_W, fh*fw*n_C) matrix of the windows of the padded input, rows in (example, h, w) order."""
    cols = _checks.windows(A_pad, fh, fw, stride, n_H, n_W)  # (m, n_H, n_W, fh, fw, C), a view
    return cols.reshape(-1, fh * fw * A_pad.shape[3])  # the one copy of the forward pass


def _conv_args(A_prev, W, b, hparameters):
    dtype = _checks.float_dtype(A_prev, W, b)
    A_prev = _checks.activations(A_prev, "A_prev", dtype)
    W = _checks.filters(W, A_prev.shape[3], dtype)
    b = _checks.bias(b, W.shape[3], dtype)
    stride, pad = _checks.hyper(hparameters, ("stride", "pad"))
    (_, n_H_prev, n_W_prev, _), (fh, fw) = A_prev.shape, W.shape[:2]
    try:
        n_H = conv_output_size(n_H_prev, fh, stride=stride, pad=pad)
        n_W = conv_output_size(n_W_prev, fw, stride=stride, pad=pad)
    except InputError as e:
        raise InputError(f"A_prev {A_prev.shape} with W {W.shape}: {e}") from None
    return A_prev, W, b, stride, pad, n_H, n_W


def conv_forward(A_prev: np.ndarray, W: np.ndarray, b: np.ndarray, hparameters: dict) -> tuple[np.ndarray, tuple]:
    """Forward pass of a convolution layer.

    Args:
        A_prev: (m, n_H_prev, n_W_prev, n_C_prev) activations of the previous layer.
        W: (f, f, n_C_prev, n_C) filters (rectangular (fh, fw, ...) filters work too).
        b: (1, 1, 1, n_C) biases.
        hparameters: ``{"stride": s, "pad": p}``.

    Returns:
        Z: (m, n_H, n_W, n_C) with ``n_H = floor((n_H_prev + 2p - f) / s) + 1``.
        cache: ``(A_prev, W, b, hparameters)`` for `conv_backward`.

    Raises:
        InputError: shapes that do not fit together (channels of W vs A_prev, bias shape), a stride below 1,
            negative padding, or an empty output.
    """
    A_prev, W, b, stride, pad, n_H, n_W = _conv_args(A_prev, W, b, hparameters)
    fh, fw, n_C_prev, n_C = W.shape
    cols = _im2col(zero_pad(A_prev, pad), fh, fw, stride, n_H, n_W)  # (m*n_H*n_W, fh*fw*n_C_prev)
    Z = cols @ W.reshape(fh * fw * n_C_prev, n_C) + b.reshape(n_C)  # (m*n_H*n_W, n_C)
    return Z.reshape(A_prev.shape[0], n_H, n_W, n_C), (A_prev, W, b, hparameters)


def conv_backward(dZ: np.ndarray, cache: tuple) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Backward pass of a convolution layer.

    Args:
        dZ: (m, n_H, n_W, n_C) gradient of the cost with respect to the output Z.
        cache: what `conv_forward` returned.

    Returns:
        dA_prev: (m, n_H_prev, n_W_prev, n_C_prev) gradient with respect to A_prev.
        dW: (f, f, n_C_prev, n_C) gradient with respect to W.
        db: (1, 1, 1, n_C) gradient with respect to b.
    """
    A_prev, W, b, hparameters = cache
    A_prev, W, b, stride, pad, n_H, n_W = _conv_args(A_prev, W, b, hparameters)
    m, n_H_prev, n_W_prev, n_C_prev = A_prev.shape
    fh, fw, _, n_C = W.shape
    dZ = _checks.gradient(dZ, (m, n_H, n_W, n_C), "dZ", A_prev.dtype)
    dZ2 = dZ.reshape(-1, n_C)  # (m*n_H*n_W, n_C)

    A_pad = zero_pad(A_prev, pad)
    # The cache keeps the course's (A_prev, W, b, hparameters), so the window matrix is rebuilt rather than stored.
    cols = _im2col(A_pad, fh, fw, stride, n_H, n_W)
    dW = (cols.T @ dZ2).reshape(fh, fw, n_C_prev, n_C)
    db = dZ2.sum(axis=0).reshape(1, 1, 1, n_C)

    dcols = (dZ2 @ W.reshape(-1, n_C).T).reshape(m, n_H, n_W, fh, fw, n_C_prev)
    dA_pad = np.zeros_like(A_pad)
    # Overlapping windows add up: scatter each kernel offset's share onto the pixels it read (col2im).
    for i in range(fh):
        for j in range(fw):
            dA_pad[_checks.offset_slices(i, j, stride, n_H, n_W)] += dcols[:, :, :, i, j, :]
    dA_prev = dA_pad[:, pad : pad + n_H_prev, pad : pad + n_W_prev, :]
    return dA_prev, dW, db

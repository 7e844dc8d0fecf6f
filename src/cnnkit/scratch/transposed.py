"""Transposed convolution ("deconvolution", the up-sampling layer of U-Net) forward and backward, vectorised.

Each input pixel stamps its filter, scaled by its value, onto the output at stride ``s``; overlapping stamps add up,
then ``pad`` rows and columns are cropped from each border:

``Z_full[:, s*h + i, s*w + j, :] += A_prev[:, h, w, :] @ W[i, j]``  and  ``Z = Z_full[:, p : p + n_H, p : p + n_W] + b``

with ``n_H = (n_H_prev - 1) * s - 2p + f + output_padding``. This is exactly the gradient of a convolution with
respect to its input, and PyTorch's ``conv_transpose2d``.

Shapes: ``A_prev`` (m, n_H_prev, n_W_prev, n_C_prev), ``W`` (f, f, n_C_prev, n_C) (input channels first, as in
`conv_forward`: PyTorch's weight is ``W.transpose(2, 3, 0, 1)``), ``b`` (1, 1, 1, n_C),
``hparameters = {"stride": s, "pad": p}`` plus an optional ``"output_padding"`` (default 0, below the stride).
"""

from __future__ import annotations

import numpy as np

from cnnkit.errors import InputError
from cnnkit.scratch import _checks
from cnnkit.shapes import conv_transpose_output_size

__all__ = ["conv_transpose_backward", "conv_transpose_forward"]


def _args(A_prev, W, b, hparameters):
    dtype = _checks.float_dtype(A_prev, W, b)
    A_prev = _checks.activations(A_prev, "A_prev", dtype)
    W = _checks.filters(W, A_prev.shape[3], dtype)
    b = _checks.bias(b, W.shape[3], dtype)
    stride, pad, output_padding = _checks.hyper(hparameters, ("stride", "pad"), {"output_padding": 0})
    (_, n_H_prev, n_W_prev, _), (fh, fw) = A_prev.shape, W.shape[:2]
    try:
        n_H = conv_transpose_output_size(n_H_prev, fh, stride, pad, output_padding)
        n_W = conv_transpose_output_size(n_W_prev, fw, stride, pad, output_padding)
    except InputError as e:
        raise InputError(f"A_prev {A_prev.shape} with W {W.shape}: {e}") from None
    return A_prev, W, b, stride, pad, output_padding, n_H, n_W


def conv_transpose_forward(A_prev: np.ndarray, W: np.ndarray, b: np.ndarray,
                           hparameters: dict) -> tuple[np.ndarray, tuple]:
    """Forward pass of a transposed convolution.

    Args:
        A_prev: (m, n_H_prev, n_W_prev, n_C_prev) input.
        W: (f, f, n_C_prev, n_C) filters.
        b: (1, 1, 1, n_C) biases.
        hparameters: ``{"stride": s, "pad": p}``, optionally ``"output_padding"``.

    Returns:
        Z: (m, n_H, n_W, n_C) with ``n_H = (n_H_prev - 1) * s - 2p + f + output_padding``.
        cache: ``(A_prev, W, b, hparameters)`` for `conv_transpose_backward`.
    """
    A_prev, W, b, stride, pad, output_padding, n_H, n_W = _args(A_prev, W, b, hparameters)
    m, n_H_prev, n_W_prev, n_C_prev = A_prev.shape
    fh, fw, _, n_C = W.shape
    # Every input pixel times every filter tap, in one product: (m*n_H_prev*n_W_prev, fh*fw*n_C).
    stamps = A_prev.reshape(-1, n_C_prev) @ W.transpose(2, 0, 1, 3).reshape(n_C_prev, -1)
    stamps = stamps.reshape(m, n_H_prev, n_W_prev, fh, fw, n_C)
    # Room for every stamp and for the output_padding rows, which hold zeros plus the bias.
    full = np.zeros((m, (n_H_prev - 1) * stride + fh + output_padding,
                     (n_W_prev - 1) * stride + fw + output_padding, n_C), dtype=A_prev.dtype)
    for i in range(fh):
        for j in range(fw):
            full[_checks.offset_slices(i, j, stride, n_H_prev, n_W_prev)] += stamps[:, :, :, i, j, :]
    Z = full[:, pad : pad + n_H, pad : pad + n_W, :] + b
    return Z, (A_prev, W, b, hparameters)


def conv_transpose_backward(dZ: np.ndarray, cache: tuple) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Backward pass of a transposed convolution.

    The gradient with respect to the input is an ordinary strided convolution of ``dZ`` (re-padded to the uncropped
    size) with the same filters, channels swapped.

    Args:
        dZ: (m, n_H, n_W, n_C) gradient with respect to the output.
        cache: what `conv_transpose_forward` returned.

    Returns:
        dA_prev: (m, n_H_prev, n_W_prev, n_C_prev); dW: (f, f, n_C_prev, n_C); db: (1, 1, 1, n_C).
    """
    A_prev, W, b, hparameters = cache
    A_prev, W, b, stride, pad, output_padding, n_H, n_W = _args(A_prev, W, b, hparameters)
    m, n_H_prev, n_W_prev, n_C_prev = A_prev.shape
    fh, fw, _, n_C = W.shape
    dZ = _checks.gradient(dZ, (m, n_H, n_W, n_C), "dZ", A_prev.dtype)
    db = dZ.sum(axis=(0, 1, 2)).reshape(1, 1, 1, n_C)

    full = np.zeros((m, (n_H_prev - 1) * stride + fh + output_padding,
                     (n_W_prev - 1) * stride + fw + output_padding, n_C), dtype=A_prev.dtype)
    full[:, pad : pad + n_H, pad : pad + n_W, :] = dZ  # undo the crop: cropped pixels had zero gradient
    # Window (h, w) of the uncropped gradient holds exactly the pixels input pixel (h, w) stamped.
    dstamps = _checks.windows(full, fh, fw, stride, n_H_prev, n_W_prev).reshape(-1, fh * fw * n_C)
    dA_prev = (dstamps @ W.transpose(0, 1, 3, 2).reshape(-1, n_C_prev)).reshape(m, n_H_prev, n_W_prev, n_C_prev)
    dW = (A_prev.reshape(-1, n_C_prev).T @ dstamps).reshape(n_C_prev, fh, fw, n_C).transpose(1, 2, 0, 3)
    return dA_prev, dW, db

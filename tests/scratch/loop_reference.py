"""The obvious reference: the course's loops, one output element at a time, written without any cnnkit code.

Slow on purpose (four nested loops over example, row, column and channel); only for small inputs in tests, and for
the benchmark's "how much faster is the vectorised version" line.
"""

from __future__ import annotations

import numpy as np


def _pad(X, pad):
    return np.pad(X, ((0, 0), (pad, pad), (pad, pad), (0, 0)))


def conv_forward_loops(A_prev, W, b, stride, pad):
    m, n_H_prev, n_W_prev, _ = A_prev.shape
    f, _, _, n_C = W.shape
    n_H = (n_H_prev + 2 * pad - f) // stride + 1
    n_W = (n_W_prev + 2 * pad - f) // stride + 1
    A_pad = _pad(A_prev, pad)
    Z = np.zeros((m, n_H, n_W, n_C), dtype=A_prev.dtype)
    for i in range(m):
        for h in range(n_H):
            for w in range(n_W):
                for c in range(n_C):
                    window = A_pad[i, h * stride : h * stride + f, w * stride : w * stride + f, :]
                    Z[i, h, w, c] = np.sum(window * W[:, :, :, c]) + b[0, 0, 0, c]
    return Z


def conv_backward_loops(dZ, A_prev, W, stride, pad):
    m, n_H, n_W, n_C = dZ.shape
    f = W.shape[0]
    A_pad = _pad(A_prev, pad)
    dA_pad = np.zeros_like(A_pad)
    dW = np.zeros_like(W)
    db = np.zeros((1, 1, 1, n_C), dtype=W.dtype)
    for i in range(m):
        for h in range(n_H):
            for w in range(n_W):
                for c in range(n_C):
                    hs, ws = h * stride, w * stride
                    dA_pad[i, hs : hs + f, ws : ws + f, :] += W[:, :, :, c] * dZ[i, h, w, c]
                    dW[:, :, :, c] += A_pad[i, hs : hs + f, ws : ws + f, :] * dZ[i, h, w, c]
                    db[:, :, :, c] += dZ[i, h, w, c]
    n_H_prev, n_W_prev = A_prev.shape[1:3]
    return dA_pad[:, pad : pad + n_H_prev, pad : pad + n_W_prev, :], dW, db


def pool_forward_loops(A_prev, f, stride, mode):
    m, n_H_prev, n_W_prev, n_C = A_prev.shape
    n_H = (n_H_prev - f) // stride + 1
    n_W = (n_W_prev - f) // stride + 1
    A = np.zeros((m, n_H, n_W, n_C), dtype=A_prev.dtype)
    for i in range(m):
        for h in range(n_H):
            for w in range(n_W):
                for c in range(n_C):
                    window = A_prev[i, h * stride : h * stride + f, w * stride : w * stride + f, c]
                    A[i, h, w, c] = np.max(window) if mode == "max" else np.mean(window)
    return A


def pool_backward_loops(dA, A_prev, f, stride, mode):
    """The course's version: max routes the gradient to every element equal to the window's maximum."""
    m, n_H, n_W, n_C = dA.shape
    dA_prev = np.zeros_like(A_prev)
    for i in range(m):
        for h in range(n_H):
            for w in range(n_W):
                for c in range(n_C):
                    hs, ws = h * stride, w * stride
                    if mode == "max":
                        window = A_prev[i, hs : hs + f, ws : ws + f, c]
                        dA_prev[i, hs : hs + f, ws : ws + f, c] += (window == np.max(window)) * dA[i, h, w, c]
                    else:
                        dA_prev[i, hs : hs + f, ws : ws + f, c] += dA[i, h, w, c] / (f * f)
    return dA_prev


def conv_transpose_forward_loops(A_prev, W, b, stride, pad, output_padding=0):
    """Scatter form: every input pixel adds its value times the filter at (stride*h, stride*w), then crop."""
    m, n_H_prev, n_W_prev, _ = A_prev.shape
    f, _, _, n_C = W.shape
    full = np.zeros((m, (n_H_prev - 1) * stride + f + output_padding, (n_W_prev - 1) * stride + f + output_padding,
                     n_C), dtype=A_prev.dtype)
    for i in range(m):
        for h in range(n_H_prev):
            for w in range(n_W_prev):
                for c in range(n_C):
                    full[i, h * stride : h * stride + f, w * stride : w * stride + f, c] += (
                        np.sum(A_prev[i, h, w, :] * W[:, :, :, c], axis=2)
                    )
    n_H = (n_H_prev - 1) * stride - 2 * pad + f + output_padding
    n_W = (n_W_prev - 1) * stride - 2 * pad + f + output_padding
    return full[:, pad : pad + n_H, pad : pad + n_W, :] + b

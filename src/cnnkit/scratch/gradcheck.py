"""Finite-difference gradient checking, as in the course: compare backprop with ``(J(x + eps) - J(x - eps)) / 2eps``.

This loops over every element of the checked array on purpose (it is the slow, obviously correct side of the
comparison), so keep the arrays small: a few hundred elements.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

__all__ = ["gradient_difference", "numerical_gradient"]


def numerical_gradient(J: Callable[[np.ndarray], float], x: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Central-difference gradient of the scalar function `J` at `x`.

    Args:
        J: maps an array shaped like `x` to one number.
        x: point to differentiate at (float64 for a meaningful check); it is left unchanged.
        eps: step; 1e-6 balances truncation and rounding error in float64.

    Returns:
        Array of `x`'s shape: ``(J(x + eps*e_k) - J(x - eps*e_k)) / (2*eps)`` for each element k.
    """
    x = np.array(x, dtype=np.float64)  # a private copy, nudged in place
    grad = np.zeros_like(x)
    flat, gflat = x.reshape(-1), grad.reshape(-1)
    for k in range(flat.size):
        old = flat[k]
        flat[k] = old + eps
        plus = float(J(x))
        flat[k] = old - eps
        minus = float(J(x))
        flat[k] = old
        gflat[k] = (plus - minus) / (2 * eps)
    return grad


def gradient_difference(grad: np.ndarray, approx: np.ndarray) -> float:
    """The course's relative difference ``||grad - approx|| / (||grad|| + ||approx||)``; below 1e-7 is a pass.

    Returns 0.0 when both are zero.
    """
    grad, approx = np.asarray(grad, dtype=np.float64), np.asarray(approx, dtype=np.float64)
    denom = np.linalg.norm(grad) + np.linalg.norm(approx)
    return 0.0 if denom == 0 else float(np.linalg.norm(grad - approx) / denom)

"""The vectorised scratch ops against the plain four-loop versions of loop_reference.py, on small random inputs."""

from __future__ import annotations

import numpy as np
import pytest
from loop_reference import (
    conv_backward_loops,
    conv_forward_loops,
    conv_transpose_forward_loops,
    pool_backward_loops,
    pool_forward_loops,
)

from cnnkit import scratch

# (m, n_H, n_W, C_in, C_out, f, stride, pad): odd sizes, strides that skip pixels, pads larger than f // 2.
CONV_CASES = [
    (2, 5, 7, 3, 4, 3, 1, 1),
    (1, 8, 6, 2, 3, 2, 2, 0),
    (3, 7, 7, 1, 2, 3, 3, 2),
    (2, 4, 5, 4, 1, 1, 2, 1),
    (1, 6, 9, 2, 2, 4, 1, 3),
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", CONV_CASES)
def test_conv_equals_loops(case, dtype):
    m, h, w, ci, co, f, s, p = case
    rng = np.random.default_rng(sum(case))
    A, W, b = (rng.standard_normal(shape).astype(dtype) for shape in [(m, h, w, ci), (f, f, ci, co), (1, 1, 1, co)])
    Z, cache = scratch.conv_forward(A, W, b, {"stride": s, "pad": p})
    tol = 1e-12 if dtype == np.float64 else 1e-4
    np.testing.assert_allclose(Z, conv_forward_loops(A, W, b, s, p), rtol=0, atol=tol)

    dZ = rng.standard_normal(Z.shape).astype(dtype)
    for got, want in zip(scratch.conv_backward(dZ, cache), conv_backward_loops(dZ, A, W, s, p), strict=True):
        assert got.dtype == dtype and got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=0, atol=tol)


@pytest.mark.parametrize("case", CONV_CASES)
def test_conv_transpose_equals_loops(case):
    m, h, w, ci, co, f, s, p = case
    rng = np.random.default_rng(sum(case))
    A, W, b = (rng.standard_normal(shape) for shape in [(m, h, w, ci), (f, f, ci, co), (1, 1, 1, co)])
    op = s - 1
    Z, _ = scratch.conv_transpose_forward(A, W, b, {"stride": s, "pad": p, "output_padding": op})
    np.testing.assert_allclose(Z, conv_transpose_forward_loops(A, W, b, s, p, op), rtol=0, atol=1e-12)


@pytest.mark.parametrize("mode", ["max", "average"])
@pytest.mark.parametrize(("shape", "f", "stride"), [((2, 6, 6, 3), 2, 2), ((1, 7, 5, 2), 3, 1), ((2, 9, 8, 1), 2, 3),
                                                    ((1, 4, 4, 2), 4, 1)])
def test_pool_equals_loops(shape, f, stride, mode):
    A = np.random.default_rng(f * 10 + stride).standard_normal(shape)
    out, cache = scratch.pool_forward(A, {"f": f, "stride": stride}, mode=mode)
    np.testing.assert_allclose(out, pool_forward_loops(A, f, stride, mode), rtol=0, atol=1e-12)
    dA = np.random.default_rng(1).standard_normal(out.shape)
    np.testing.assert_allclose(scratch.pool_backward(dA, cache, mode=mode),
                               pool_backward_loops(dA, A, f, stride, mode), rtol=0, atol=1e-12)


def test_max_pool_ties_all_is_the_course_mask():
    # Windows full of ties (as after a ReLU): every tied maximum gets the whole gradient, as the course's mask does.
    A = np.random.default_rng(0).integers(0, 2, (2, 6, 6, 3)).astype(np.float64)
    out, cache = scratch.pool_forward(A, {"f": 2, "stride": 1})
    dA = np.random.default_rng(1).standard_normal(out.shape)
    got = scratch.pool_backward(dA, cache)
    np.testing.assert_allclose(got, pool_backward_loops(dA, A, 2, 1, "max"), rtol=0, atol=1e-12)
    first = scratch.pool_backward(dA, cache, ties="first")
    assert not np.allclose(got, first)  # the inputs do tie, so the two rules must differ
    # "first" conserves the gradient (each window hands on exactly its dA); "all" multiplies it by the ties.
    np.testing.assert_allclose(first.sum(), dA.sum())


def test_conv_single_step_and_helpers_follow_the_course():
    rng = np.random.default_rng(0)
    a, W, b = rng.standard_normal((4, 4, 3)), rng.standard_normal((4, 4, 3)), rng.standard_normal((1, 1, 1))
    want = sum(a[i, j, k] * W[i, j, k] for i in range(4) for j in range(4) for k in range(3)) + b[0, 0, 0]
    assert scratch.conv_single_step(a, W, b) == pytest.approx(want, abs=1e-12)

    X = rng.standard_normal((2, 3, 4, 2))
    P = scratch.zero_pad(X, 2)
    assert P.shape == (2, 7, 8, 2)
    np.testing.assert_array_equal(P[:, 2:5, 2:6], X)
    assert P.sum() == pytest.approx(X.sum()) and np.all(P[:, :2] == 0) and np.all(P[:, :, -2:] == 0)

    x = np.array([[1.0, 3.0], [3.0, -1.0]])
    np.testing.assert_array_equal(scratch.create_mask_from_window(x), [[False, True], [True, False]])
    v = scratch.distribute_value(2.0, (2, 2))
    np.testing.assert_array_equal(v, np.full((2, 2), 0.5))

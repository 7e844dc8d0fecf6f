"""Every scratch op against PyTorch (forward, and autograd for the backward) in float64, on random shapes.

Layouts: NumPy is NHWC with W (f, f, C_in, C_out); PyTorch is NCHW with conv2d weight (C_out, C_in, f, f) and
conv_transpose2d weight (C_in, C_out, f, f).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from cnnkit import scratch

TOL = 1e-10
SETTINGS = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def nchw(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2))).requires_grad_()


def nhwc(t: torch.Tensor) -> np.ndarray:
    return t.detach().numpy().transpose(0, 2, 3, 1)


def close(a: np.ndarray, b: np.ndarray) -> None:
    assert a.shape == b.shape, (a.shape, b.shape)
    assert a.dtype == np.float64
    np.testing.assert_allclose(a, b, rtol=0, atol=TOL)


def rand(seed: int, *shape: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape)


conv_cases = st.fixed_dictionaries({
    "m": st.integers(1, 3), "h": st.integers(1, 9), "w": st.integers(1, 9), "c_in": st.integers(1, 4),
    "c_out": st.integers(1, 4), "f": st.integers(1, 4), "stride": st.integers(1, 3), "pad": st.integers(0, 2),
    "seed": st.integers(0, 2**31),
})


@SETTINGS
@given(conv_cases)
def test_conv_forward_backward_equal_torch(case):
    m, h, w, ci, co, f, s, p = (case[k] for k in ("m", "h", "w", "c_in", "c_out", "f", "stride", "pad"))
    assume(f <= h + 2 * p and f <= w + 2 * p)
    seed = case["seed"]
    A, W, b = rand(seed, m, h, w, ci), rand(seed + 1, f, f, ci, co), rand(seed + 2, 1, 1, 1, co)

    Z, cache = scratch.conv_forward(A, W, b, {"stride": s, "pad": p})
    At, Wt = nchw(A), torch.from_numpy(np.ascontiguousarray(W.transpose(3, 2, 0, 1))).requires_grad_()
    bt = torch.from_numpy(b.reshape(-1)).requires_grad_()
    Zt = F.conv2d(At, Wt, bt, stride=s, padding=p)
    close(Z, nhwc(Zt))

    dZ = rand(seed + 3, *Z.shape)
    gA, gW, gb = torch.autograd.grad(Zt, (At, Wt, bt), torch.from_numpy(np.ascontiguousarray(dZ.transpose(0, 3, 1, 2))))
    dA, dW, db = scratch.conv_backward(dZ, cache)
    close(dA, nhwc(gA))
    close(dW, gW.numpy().transpose(2, 3, 1, 0))
    close(db, gb.numpy().reshape(1, 1, 1, -1))


@SETTINGS
@given(conv_cases, st.integers(0, 2))
def test_conv_transpose_forward_backward_equal_torch(case, extra):
    m, h, w, ci, co, f, s, p = (case[k] for k in ("m", "h", "w", "c_in", "c_out", "f", "stride", "pad"))
    op = extra % s  # output_padding must stay below the stride
    assume((h - 1) * s - 2 * p + f + op >= 1 and (w - 1) * s - 2 * p + f + op >= 1)
    seed = case["seed"]
    A, W, b = rand(seed, m, h, w, ci), rand(seed + 1, f, f, ci, co), rand(seed + 2, 1, 1, 1, co)

    Z, cache = scratch.conv_transpose_forward(A, W, b, {"stride": s, "pad": p, "output_padding": op})
    At, Wt = nchw(A), torch.from_numpy(np.ascontiguousarray(W.transpose(2, 3, 0, 1))).requires_grad_()
    bt = torch.from_numpy(b.reshape(-1)).requires_grad_()
    Zt = F.conv_transpose2d(At, Wt, bt, stride=s, padding=p, output_padding=op)
    close(Z, nhwc(Zt))

    dZ = rand(seed + 3, *Z.shape)
    gA, gW, gb = torch.autograd.grad(Zt, (At, Wt, bt), torch.from_numpy(np.ascontiguousarray(dZ.transpose(0, 3, 1, 2))))
    dA, dW, db = scratch.conv_transpose_backward(dZ, cache)
    close(dA, nhwc(gA))
    close(dW, gW.numpy().transpose(2, 3, 0, 1))
    close(db, gb.numpy().reshape(1, 1, 1, -1))


@SETTINGS
@given(st.integers(1, 3), st.integers(1, 10), st.integers(1, 10), st.integers(1, 4), st.integers(1, 4),
       st.integers(1, 4), st.sampled_from(["max", "average"]), st.integers(0, 2**31))
def test_pool_forward_backward_equal_torch(m, h, w, c, f, s, mode, seed):
    assume(f <= h and f <= w)
    A = rand(seed, m, h, w, c)  # random floats: no ties, so the course's mask and PyTorch's argmax agree
    out, cache = scratch.pool_forward(A, {"f": f, "stride": s}, mode=mode)
    At = nchw(A)
    pool = F.max_pool2d if mode == "max" else F.avg_pool2d
    Ot = pool(At, kernel_size=f, stride=s)
    close(out, nhwc(Ot))

    dA = rand(seed + 1, *out.shape)
    (g,) = torch.autograd.grad(Ot, At, torch.from_numpy(np.ascontiguousarray(dA.transpose(0, 3, 1, 2))))
    close(scratch.pool_backward(dA, cache, mode=mode), nhwc(g))


@SETTINGS
@given(st.integers(1, 3), st.integers(2, 8), st.integers(1, 4), st.integers(1, 4), st.integers(0, 2**31))
def test_max_pool_ties_first_equals_torch_on_tied_inputs(m, hw, f, s, seed):
    assume(f <= hw)
    # Small integers make ties in almost every window: the case where the two tie rules differ.
    A = np.random.default_rng(seed).integers(0, 3, (m, hw, hw, 2)).astype(np.float64)
    out, cache = scratch.pool_forward(A, {"f": f, "stride": s})
    At = nchw(A)
    Ot = F.max_pool2d(At, kernel_size=f, stride=s)
    dA = rand(seed + 1, *out.shape)
    (g,) = torch.autograd.grad(Ot, At, torch.from_numpy(np.ascontiguousarray(dA.transpose(0, 3, 1, 2))))
    close(scratch.pool_backward(dA, cache, ties="first"), nhwc(g))


@SETTINGS
@given(st.integers(1, 3), st.integers(1, 7), st.integers(1, 7), st.integers(1, 5), st.booleans(),
       st.integers(0, 2**31))
def test_global_avg_pool_equals_torch(m, h, w, c, keepdims, seed):
    A = rand(seed, m, h, w, c)
    out, cache = scratch.global_avg_pool_forward(A, keepdims=keepdims)
    At = nchw(A)
    Ot = F.adaptive_avg_pool2d(At, 1)  # (m, c, 1, 1)
    close(out, nhwc(Ot) if keepdims else Ot.detach().numpy().reshape(m, c))

    dA = rand(seed + 1, *out.shape)
    (g,) = torch.autograd.grad(Ot, At, torch.from_numpy(dA.reshape(m, c, 1, 1)))
    close(scratch.global_avg_pool_backward(dA, cache), nhwc(g))


def test_1x1_convolution_is_a_matrix_product_per_pixel():
    A, W, b = rand(0, 2, 5, 6, 7), rand(1, 1, 1, 7, 3), rand(2, 1, 1, 1, 3)
    Z, cache = scratch.conv_forward(A, W, b, {"stride": 1, "pad": 0})
    close(Z, np.einsum("mhwc,cd->mhwd", A, W[0, 0]) + b)
    Zt = F.conv2d(nchw(A), torch.from_numpy(np.ascontiguousarray(W.transpose(3, 2, 0, 1))),
                  torch.from_numpy(b.reshape(-1)))
    close(Z, nhwc(Zt))
    dZ = rand(3, *Z.shape)
    dA, dW, _ = scratch.conv_backward(dZ, cache)
    close(dA, np.einsum("mhwd,cd->mhwc", dZ, W[0, 0]))
    close(dW[0, 0], np.einsum("mhwc,mhwd->cd", A, dZ))

"""Finite-difference gradient checks of every backward pass, dtype preservation, and the errors of bad arguments."""

from __future__ import annotations

import numpy as np
import pytest

from cnnkit import scratch
from cnnkit.errors import InputError

PASS = 1e-7  # the course's threshold on ||grad - approx|| / (||grad|| + ||approx||)


def _rng(seed=0):
    return np.random.default_rng(seed)


def _check(forward, backward, inputs: list[np.ndarray], names: list[str]):
    """J = sum(forward(*inputs) * G) for a fixed random G, so dJ/d(output) = G; compare backward(G) with J's FD."""
    out = forward(*inputs)
    G = _rng(99).standard_normal(out.shape)
    grads = backward(G, *inputs)
    for k, name in enumerate(names):
        def J(x, k=k):
            args = list(inputs)
            args[k] = x
            return float(np.sum(forward(*args) * G))

        approx = scratch.numerical_gradient(J, inputs[k])
        diff = scratch.gradient_difference(grads[k], approx)
        assert diff < PASS, f"{name}: relative difference {diff:.2e}"


@pytest.mark.parametrize(("stride", "pad"), [(1, 0), (2, 1), (1, 2)])
def test_conv_backward_passes_gradient_check(stride, pad):
    hp = {"stride": stride, "pad": pad}
    rng = _rng(stride + pad)
    inputs = [rng.standard_normal((2, 5, 4, 2)), rng.standard_normal((3, 3, 2, 3)), rng.standard_normal((1, 1, 1, 3))]
    _check(lambda A, W, b: scratch.conv_forward(A, W, b, hp)[0],
           lambda G, A, W, b: scratch.conv_backward(G, scratch.conv_forward(A, W, b, hp)[1]),
           inputs, ["dA_prev", "dW", "db"])


@pytest.mark.parametrize(("stride", "pad", "output_padding"), [(1, 0, 0), (2, 1, 1), (3, 0, 2)])
def test_conv_transpose_backward_passes_gradient_check(stride, pad, output_padding):
    hp = {"stride": stride, "pad": pad, "output_padding": output_padding}
    rng = _rng(stride)
    inputs = [rng.standard_normal((2, 3, 4, 2)), rng.standard_normal((3, 3, 2, 3)), rng.standard_normal((1, 1, 1, 3))]
    _check(lambda A, W, b: scratch.conv_transpose_forward(A, W, b, hp)[0],
           lambda G, A, W, b: scratch.conv_transpose_backward(G, scratch.conv_transpose_forward(A, W, b, hp)[1]),
           inputs, ["dA_prev", "dW", "db"])


@pytest.mark.parametrize("mode", ["max", "average"])
@pytest.mark.parametrize(("f", "stride"), [(2, 2), (3, 1), (2, 3)])
def test_pool_backward_passes_gradient_check(mode, f, stride):
    hp = {"f": f, "stride": stride}
    A = _rng(f).standard_normal((2, 7, 6, 2))  # distinct floats: max is differentiable at this point
    _check(lambda A: scratch.pool_forward(A, hp, mode)[0],
           lambda G, A: (scratch.pool_backward(G, scratch.pool_forward(A, hp, mode)[1], mode),),
           [A], ["dA_prev"])


def test_global_avg_pool_backward_passes_gradient_check():
    A = _rng().standard_normal((2, 4, 3, 3))
    _check(lambda A: scratch.global_avg_pool_forward(A)[0],
           lambda G, A: (scratch.global_avg_pool_backward(G, scratch.global_avg_pool_forward(A)[1]),),
           [A], ["dA_prev"])


def test_gradient_check_catches_a_wrong_gradient():
    A = _rng().standard_normal((1, 4, 4, 1))
    hp = {"f": 2, "stride": 2}
    with pytest.raises(AssertionError, match="relative difference"):
        _check(lambda A: scratch.pool_forward(A, hp, "average")[0],
               lambda G, A: (2 * scratch.pool_backward(G, scratch.pool_forward(A, hp, "average")[1], "average"),),
               [A], ["dA_prev"])


def test_float32_in_float32_out():
    rng = _rng()
    A, W, b = (rng.standard_normal(s).astype(np.float32) for s in [(2, 6, 6, 3), (3, 3, 3, 4), (1, 1, 1, 4)])
    hp = {"stride": 2, "pad": 1}
    Z, cache = scratch.conv_forward(A, W, b, hp)
    outs = [Z, *scratch.conv_backward(np.ones_like(Z), cache)]
    Zt, cache = scratch.conv_transpose_forward(A, W, b, hp)
    outs += [Zt, *scratch.conv_transpose_backward(np.ones_like(Zt), cache)]
    for mode in ("max", "average"):
        P, cache = scratch.pool_forward(A, {"f": 2, "stride": 2}, mode)
        outs += [P, scratch.pool_backward(np.ones_like(P), cache, mode)]
    G, cache = scratch.global_avg_pool_forward(A)
    outs += [G, scratch.global_avg_pool_backward(np.ones_like(G), cache), scratch.zero_pad(A, 1)]
    outs += [scratch.conv_single_step(A[0, :3, :3], W[..., 0], b[..., 0])]
    outs += [scratch.distribute_value(np.float32(1), (2, 2))]
    assert [o.dtype for o in outs] == [np.dtype(np.float32)] * len(outs)
    # and float64 stays float64
    A, W, b = (x.astype(np.float64) for x in (A, W, b))
    assert scratch.conv_forward(A, W, b, hp)[0].dtype == np.float64


A3 = np.zeros((1, 5, 5, 3))
W3 = np.zeros((3, 3, 3, 2))
B3 = np.zeros((1, 1, 1, 2))


@pytest.mark.parametrize(("call", "words"), [
    (lambda: scratch.conv_forward(A3, W3, B3, {"stride": 0, "pad": 0}), "stride"),
    (lambda: scratch.conv_forward(A3, W3, B3, {"stride": 1, "pad": -1}), "pad"),
    (lambda: scratch.conv_forward(A3, W3, B3, {"stride": 1}), "missing"),
    (lambda: scratch.conv_forward(A3, np.zeros((3, 3, 4, 2)), B3, {"stride": 1, "pad": 0}), "channels"),
    (lambda: scratch.conv_forward(A3, W3, np.zeros((1, 1, 1, 3)), {"stride": 1, "pad": 0}), "bias"),
    (lambda: scratch.conv_forward(A3[0], W3, B3, {"stride": 1, "pad": 0}), "4 dimensions"),
    (lambda: scratch.conv_forward(A3, np.zeros((7, 7, 3, 2)), B3, {"stride": 1, "pad": 0}), "larger than"),
    (lambda: scratch.conv_forward(A3, W3, B3, {"stride": 1.5, "pad": 0}), "whole number"),
    (lambda: scratch.conv_backward(np.zeros((1, 4, 4, 2)), (A3, W3, B3, {"stride": 1, "pad": 0})), "dZ"),
    (lambda: scratch.conv_transpose_forward(A3, W3, B3, {"stride": 2, "pad": 0, "output_padding": 2}),
     "output_padding"),
    (lambda: scratch.conv_transpose_forward(A3, np.zeros((3, 3, 2, 2)), B3, {"stride": 1, "pad": 0}), "channels"),
    (lambda: scratch.pool_forward(A3, {"f": 2, "stride": 0}), "stride"),
    (lambda: scratch.pool_forward(A3, {"f": 6, "stride": 1}), "larger than"),
    (lambda: scratch.pool_forward(A3, {"f": 2, "stride": 1}, mode="min"), "mode"),
    (lambda: scratch.pool_backward(np.zeros((1, 4, 4, 3)), scratch.pool_forward(A3, {"f": 2, "stride": 1})[1],
                                   ties="last"), "ties"),
    (lambda: scratch.global_avg_pool_backward(np.zeros((1, 2)), A3), "dA"),
    (lambda: scratch.conv_single_step(np.zeros((3, 3, 3)), np.zeros((3, 3, 2)), 0.0), "same shape"),
    (lambda: scratch.zero_pad(A3, -1), "pad"),
])
def test_bad_arguments_raise_input_error_naming_the_problem(call, words):
    with pytest.raises(InputError, match=words) as info:
        call()
    assert "\n" not in str(info.value)

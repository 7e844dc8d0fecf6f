"""The style-transfer costs against NumPy references written from the course's formulas."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from cnnkit.errors import InputError
from cnnkit.ops.gram import gram_matrix
from cnnkit.style import costs


def np_content_cost(a_C: np.ndarray, a_G: np.ndarray) -> float:
    """The course: a is (n_H, n_W, n_C); J = 1/(4 n_H n_W n_C) sum (a_C - a_G)^2."""
    n_H, n_W, n_C = a_G.shape
    return float(np.sum((a_C - a_G) ** 2) / (4 * n_H * n_W * n_C))


def np_gram(a: np.ndarray) -> np.ndarray:
    """G_kk' = sum_ij a_ijk a_ijk' with explicit loops (a is (n_H, n_W, n_C))."""
    n_H, n_W, n_C = a.shape
    G = np.zeros((n_C, n_C))
    for k in range(n_C):
        for k2 in range(n_C):
            for i in range(n_H):
                for j in range(n_W):
                    G[k, k2] += a[i, j, k] * a[i, j, k2]
    return G


def np_layer_style_cost(a_S: np.ndarray, a_G: np.ndarray) -> float:
    n_H, n_W, n_C = a_G.shape
    return float(np.sum((np_gram(a_S) - np_gram(a_G)) ** 2) / (4 * n_C**2 * (n_H * n_W) ** 2))


def to_torch(a: np.ndarray) -> torch.Tensor:
    """(n_H, n_W, n_C) NumPy -> (1, n_C, n_H, n_W) torch."""
    return torch.from_numpy(a).permute(2, 0, 1)[None]


shapes = st.tuples(st.integers(1, 5), st.integers(1, 5), st.integers(1, 4))


@settings(max_examples=30, deadline=None)
@given(shape=shapes, seed=st.integers(0, 2**16))
def test_gram_is_A_At_of_unrolled_activations(shape, seed):
    a = np.random.default_rng(seed).normal(size=shape)
    A = a.reshape(-1, shape[2]).T  # (n_C, n_H * n_W): the course's unrolling
    G = gram_matrix(to_torch(a))[0].numpy()
    np.testing.assert_allclose(G, A @ A.T, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(G, np_gram(a), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(gram_matrix(to_torch(a)[0]).numpy(), G)  # (C, H, W) input
    np.testing.assert_allclose(gram_matrix(to_torch(a), normalize=True)[0].numpy(), G / (shape[0] * shape[1]))


@settings(max_examples=30, deadline=None)
@given(shape=shapes, seed=st.integers(0, 2**16))
def test_content_and_style_costs_match_numpy(shape, seed):
    rng = np.random.default_rng(seed)
    a_C, a_G, a_S = (rng.normal(1.0, 4.0, size=shape) for _ in range(3))
    assert float(costs.content_cost(to_torch(a_C), to_torch(a_G))) == pytest.approx(np_content_cost(a_C, a_G))
    assert float(costs.layer_style_cost(to_torch(a_S), to_torch(a_G))) == pytest.approx(np_layer_style_cost(a_S, a_G))
    G_S, G_G = gram_matrix(to_torch(a_S)), gram_matrix(to_torch(a_G))
    assert float(costs.style_cost_from_gram(G_S, G_G, shape[0], shape[1])) == pytest.approx(
        np_layer_style_cost(a_S, a_G))
    half = 0.5 * np.sum((a_C - a_G) ** 2)
    assert float(costs.content_cost(to_torch(a_C), to_torch(a_G), normalization="gatys")) == pytest.approx(half)


def test_course_worked_values():
    a = torch.randn(1, 3, 4, 4)
    assert float(costs.content_cost(a, a)) == 0.0  # J(a, a) = 0
    assert float(costs.layer_style_cost(a, a)) == 0.0
    assert costs.total_cost(10, 40) == 10 * 10 + 40 * 40 == 1700  # alpha = 10, beta = 40
    assert costs.total_cost(0.5, 0.25) == pytest.approx(15.0)
    assert costs.total_cost(1.0, 2.0, alpha=1, beta=1e3) == pytest.approx(2001.0)
    # one element differs by 2 in a 1x1x2 layer: content 2^2 / (4*1*1*2) = 0.5
    a_C = torch.zeros(1, 2, 1, 1)
    a_G = a_C.clone()
    a_G[0, 1] = 2.0
    assert float(costs.content_cost(a_C, a_G)) == pytest.approx(0.5)
    # Gram of that a_G is [[0, 0], [0, 4]]; vs zeros: 4^2 / (4 * 2^2 * 1^2) = 1
    assert float(costs.layer_style_cost(a_C, a_G)) == pytest.approx(1.0)


def test_weighted_style_cost_is_the_weighted_sum():
    rng = np.random.default_rng(0)
    acts_S = {"a": rng.normal(size=(3, 3, 2)), "b": rng.normal(size=(2, 2, 4))}
    acts_G = {"a": rng.normal(size=(3, 3, 2)), "b": rng.normal(size=(2, 2, 4))}
    weights = [("a", 0.3), ("b", 0.7)]
    want = sum(w * np_layer_style_cost(acts_S[n], acts_G[n]) for n, w in weights)
    got = costs.style_cost({k: to_torch(v) for k, v in acts_S.items()}, {k: to_torch(v) for k, v in acts_G.items()},
                           weights)
    assert float(got) == pytest.approx(want)
    assert float(costs.style_cost({k: to_torch(v) for k, v in acts_S.items()},
                                  {k: to_torch(v) for k, v in acts_G.items()}, dict(weights))) == pytest.approx(want)


def test_style_image_of_another_size_is_compared_per_position():
    # a style map repeated twice side by side has the same texture: its rescaled Gram matches the original's
    a_S = torch.randn(1, 3, 4, 4, dtype=torch.float64)
    a_G = torch.randn(1, 3, 4, 4, dtype=torch.float64)
    twice = torch.cat([a_S, a_S], dim=3)
    assert float(costs.layer_style_cost(twice, a_G)) == pytest.approx(float(costs.layer_style_cost(a_S, a_G)))


def test_total_variation_matches_loops():
    x = torch.randn(2, 3, 5, 6, dtype=torch.float64)
    a = x.numpy()
    want = 0.0
    for b in range(2):
        for c in range(3):
            for i in range(5):
                for j in range(6):
                    if i + 1 < 5:
                        want += (a[b, c, i + 1, j] - a[b, c, i, j]) ** 2
                    if j + 1 < 6:
                        want += (a[b, c, i, j + 1] - a[b, c, i, j]) ** 2
    assert float(costs.total_variation(x)) == pytest.approx(want / x.numel())


def test_gradients_by_finite_differences():
    torch.manual_seed(0)
    a_C = torch.randn(1, 3, 4, 5, dtype=torch.float64)
    a_S = torch.randn(1, 3, 3, 4, dtype=torch.float64)
    a_G = torch.randn(1, 3, 4, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda g: costs.content_cost(a_C, g), (a_G,))
    assert torch.autograd.gradcheck(lambda g: costs.layer_style_cost(a_S, g), (a_G,))
    assert torch.autograd.gradcheck(costs.total_variation, (a_G,))
    assert torch.autograd.gradcheck(lambda g: gram_matrix(g), (a_G,))


def test_bad_arguments_say_what_is_wrong():
    a = torch.randn(1, 3, 4, 4)
    with pytest.raises(InputError, match="normalization"):
        costs.content_cost(a, a, normalization="paper")
    with pytest.raises(InputError, match="shape"):
        costs.content_cost(a, torch.randn(1, 3, 4, 5))
    with pytest.raises(InputError, match="channels"):
        costs.layer_style_cost(a, torch.randn(1, 2, 4, 4))
    with pytest.raises(InputError, match="at least one"):
        costs.style_cost({}, {}, [])

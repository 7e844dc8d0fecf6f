"""The costs of neural style transfer, exactly as the course defines them.

Notation: ``a`` is the activation of one layer for one image, (n_C, n_H, n_W) here (PyTorch's channel-first
order; the course writes (n_H, n_W, n_C), the sums are the same).

- content cost on one layer: ``J_content(C, G) = 1 / (4 n_H n_W n_C) * sum (a_C - a_G)^2``;
- Gram matrix: ``G_kk' = sum_ij a_ijk a_ijk'`` (see `cnnkit.ops.gram_matrix`);
- style cost of one layer: ``J_style^[l](S, G) = 1 / (4 n_C^2 (n_H n_W)^2) * sum_kk' (G_S - G_G)^2``;
- style cost: ``J_style(S, G) = sum_l lambda^[l] J_style^[l](S, G)``;
- total cost: ``J(G) = alpha J_content(C, G) + beta J_style(S, G)``, the course's alpha = 10, beta = 40, plus an
  optional total-variation term ``tv_weight * TV(G)`` that keeps neighbouring pixels alike.

The original paper (Gatys et al. 2015) writes the content cost as ``1/2 sum (F - P)^2`` with no division by the
layer size (its style cost is the course's) and weighs them alpha / beta = 1e-3; pass ``normalization="gatys"``
for that. Every function takes and returns torch tensors and is checked against a NumPy reference in the tests.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from cnnkit.errors import InputError
from cnnkit.ops.gram import gram_matrix

__all__ = [
    "ALPHA",
    "BETA",
    "NORMALIZATIONS",
    "content_cost",
    "gram_matrix",
    "layer_style_cost",
    "style_cost",
    "style_cost_from_gram",
    "total_cost",
    "total_variation",
]

ALPHA = 10.0  # the course's weight of the content cost
BETA = 40.0  # the course's weight of the style cost
NORMALIZATIONS = ("course", "gatys")


def _check_normalization(normalization: str) -> None:
    if normalization not in NORMALIZATIONS:
        raise InputError(f"unknown cost normalization {normalization!r}; use one of {', '.join(NORMALIZATIONS)}")


def content_cost(a_C: torch.Tensor, a_G: torch.Tensor, normalization: str = "course") -> torch.Tensor:
    """Content cost of one layer.

    Args:
        a_C: Tensor[B, C, H, W] or Tensor[C, H, W], activations of the content image.
        a_G: the same shape, activations of the generated image.
        normalization: "course" divides the sum of squares by ``4 n_H n_W n_C`` (per image); "gatys" (the paper)
            takes half the sum of squares.

    Returns:
        A scalar tensor (summed over the batch).
    """
    _check_normalization(normalization)
    if a_C.shape != a_G.shape:
        raise InputError(f"content and generated activations differ in shape: {tuple(a_C.shape)} vs {tuple(a_G.shape)}")
    squares = (a_C - a_G).pow(2).sum()
    if normalization == "gatys":
        return 0.5 * squares
    c, h, w = a_G.shape[-3:]
    return squares / (4.0 * c * h * w)


def style_cost_from_gram(G_S: torch.Tensor, G_G: torch.Tensor, n_H: int, n_W: int) -> torch.Tensor:
    """Style cost of one layer from its two Gram matrices: ``1 / (4 n_C^2 (n_H n_W)^2) * sum (G_S - G_G)^2``.

    Args:
        G_S: Tensor[C, C] (or [B, C, C]), Gram matrix of the style image's activations.
        G_G: the same shape, Gram matrix of the generated image's activations.
        n_H, n_W: spatial size of the layer (of the generated image; the style image may differ, see
            `layer_style_cost`).
    """
    c = G_G.shape[-1]
    return (G_S - G_G).pow(2).sum() / (4.0 * c**2 * (n_H * n_W) ** 2)


def layer_style_cost(a_S: torch.Tensor, a_G: torch.Tensor) -> torch.Tensor:
    """Style cost of one layer: Gram matrices of both activations compared as in `style_cost_from_gram`.

    Args:
        a_S: Tensor[B, C, H_S, W_S] or Tensor[C, H_S, W_S], activations of the style image.
        a_G: Tensor[B, C, H, W] or Tensor[C, H, W], activations of the generated image.

    When the style image has another size than the generated one, its Gram matrix is rescaled by
    ``(H W) / (H_S W_S)`` first, so that both sum over the same number of positions (for equal sizes this is 1
    and the cost is the course's exactly).
    """
    if a_S.shape[-3] != a_G.shape[-3]:
        raise InputError(f"style and generated activations have {a_S.shape[-3]} and {a_G.shape[-3]} channels")
    h, w = a_G.shape[-2:]
    G_S = gram_matrix(a_S) * ((h * w) / (a_S.shape[-2] * a_S.shape[-1]))
    return style_cost_from_gram(G_S, gram_matrix(a_G), h, w)


def style_cost(
    style_activations: Mapping[str, torch.Tensor],
    generated_activations: Mapping[str, torch.Tensor],
    layer_weights: Mapping[str, float] | Sequence[tuple[str, float]],
) -> torch.Tensor:
    """Weighted style cost over layers: ``sum_l lambda^[l] J_style^[l](S, G)``.

    Args:
        style_activations: layer name -> activations of the style image.
        generated_activations: layer name -> activations of the generated image.
        layer_weights: layer name -> lambda^[l] (the course: 0.2 for each of five layers), as a mapping or as
            (name, weight) pairs such as the course's ``STYLE_LAYERS``.
    """
    pairs = list(layer_weights.items()) if isinstance(layer_weights, Mapping) else list(layer_weights)
    total = None
    for name, weight in pairs:
        j = weight * layer_style_cost(style_activations[name], generated_activations[name])
        total = j if total is None else total + j
    if total is None:
        raise InputError("style_cost needs at least one style layer")
    return total


def total_cost(J_content, J_style, alpha: float = ALPHA, beta: float = BETA):
    """The course's total cost ``alpha * J_content + beta * J_style`` (numbers or tensors)."""
    return alpha * J_content + beta * J_style


def total_variation(image: torch.Tensor) -> torch.Tensor:
    """Mean squared difference between neighbouring pixels (vertical and horizontal), a smoothness penalty.

    Args:
        image: Tensor[B, C, H, W].

    Returns:
        ``(sum (x[i+1, j] - x[i, j])^2 + sum (x[i, j+1] - x[i, j])^2) / (B C H W)``: a mean, so one weight works
        at every image size.
    """
    dy = image[..., 1:, :] - image[..., :-1, :]
    dx = image[..., :, 1:] - image[..., :, :-1]
    return (dy.pow(2).sum() + dx.pow(2).sum()) / image.numel()

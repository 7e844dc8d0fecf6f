"""The Gram matrix ("style matrix") of a feature map: correlations between its channels.

For activations ``a`` of one layer, (n_H, n_W, n_C) in the course's notation, ``G_kk' = sum_ij a_ijk a_ijk'``:
unroll the activations into ``A`` of shape (n_C, n_H * n_W) and ``G = A A^T``. Entry ``G_kk'`` is large when
channels k and k' fire together at the same places, whatever those places are, which is why it describes texture
(style) and forgets the layout (content).
"""

from __future__ import annotations

import torch

__all__ = ["gram_matrix"]


def gram_matrix(features: torch.Tensor, normalize: bool = False) -> torch.Tensor:
    """Gram matrix of each feature map of a batch.

    Args:
        features: Tensor[B, C, H, W] (or Tensor[C, H, W] for one map).
        normalize: divide by the number of positions H * W (a mean rather than a sum of products).

    Returns:
        Tensor[B, C, C] (or Tensor[C, C]): ``G = A A^T`` with ``A`` the (C, H * W) unrolled activations.
    """
    squeeze = features.dim() == 3
    if squeeze:
        features = features.unsqueeze(0)
    if features.dim() != 4:
        raise ValueError(f"gram_matrix expects (B, C, H, W) or (C, H, W) features, got shape {tuple(features.shape)}")
    b, c, h, w = features.shape
    a = features.reshape(b, c, h * w)  # (B, C, H*W); reshape also copes with channels-last memory
    g = torch.bmm(a, a.transpose(1, 2))  # (B, C, C)
    if normalize:
        g = g / (h * w)
    return g[0] if squeeze else g

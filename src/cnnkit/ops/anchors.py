"""Anchor boxes over feature maps, in torchvision's layout (AnchorGenerator of Faster R-CNN / RetinaNet).

Each level has a set of sizes and aspect ratios (ratio = height / width); the anchors of one cell are centred
on the cell's top-left corner in image pixels (cell (i, j) of a level with stride s sits at (j s, i s)),
with half sizes rounded as torchvision does. Anchors are ordered level by level, then row by row, cell by
cell, and within a cell ratio-major (all sizes of the first ratio, then the next ratio).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from cnnkit.errors import InputError

__all__ = ["AnchorGenerator", "cell_anchors", "grid_anchors"]


def cell_anchors(sizes: tuple[float, ...], aspect_ratios: tuple[float, ...], dtype=torch.float32,
                 device=None) -> Tensor:
    """The anchors of one cell, centred on (0, 0).

    Args:
        sizes: square root of each anchor's area, in pixels.
        aspect_ratios: height / width of each anchor.

    Returns:
        Tensor[len(aspect_ratios) * len(sizes), 4] in (x1, y1, x2, y2), rounded to whole pixels.
    """
    scales = torch.as_tensor(sizes, dtype=dtype, device=device)
    ratios = torch.as_tensor(aspect_ratios, dtype=dtype, device=device)
    h_ratios = torch.sqrt(ratios)
    w_ratios = 1 / h_ratios
    ws = (w_ratios[:, None] * scales[None, :]).reshape(-1)
    hs = (h_ratios[:, None] * scales[None, :]).reshape(-1)
    return (torch.stack([-ws, -hs, ws, hs], dim=1) / 2).round()


def grid_anchors(base: Tensor, grid_size: tuple[int, int], stride: tuple[int, int]) -> Tensor:
    """Copy one cell's anchors to every cell of a feature map.

    Args:
        base: Tensor[A, 4] anchors of one cell (from `cell_anchors`).
        grid_size: (height, width) of the feature map.
        stride: (stride_y, stride_x) in image pixels between neighbouring cells.

    Returns:
        Tensor[H * W * A, 4] xyxy, cell-major (all A anchors of cell (0, 0), then cell (0, 1), ...).
    """
    gh, gw = grid_size
    sy, sx = stride
    shifts_x = torch.arange(0, gw, dtype=torch.int32, device=base.device) * sx
    shifts_y = torch.arange(0, gh, dtype=torch.int32, device=base.device) * sy
    yy, xx = torch.meshgrid(shifts_y, shifts_x, indexing="ij")
    xx, yy = xx.reshape(-1), yy.reshape(-1)
    shifts = torch.stack((xx, yy, xx, yy), dim=1).to(base.dtype)  # (H*W, 4)
    return (shifts[:, None, :] + base[None, :, :]).reshape(-1, 4)


class AnchorGenerator(nn.Module):
    """Anchors for a list of feature maps, torchvision's `AnchorGenerator` (same arguments and order).

    Args:
        sizes: per level, the anchor sizes (square root of area) in pixels, e.g. ((32,), (64,), (128,)).
        aspect_ratios: per level, the height/width ratios, e.g. ((0.5, 1.0, 2.0),) * 3.

    Call with the batch of images Tensor[B, C, H, W] (or an object with `.tensors`, like torchvision's
    ImageList) and the list of feature maps Tensor[B, C_l, H_l, W_l]; returns a list of B tensors
    [sum_l H_l W_l A_l, 4] of xyxy anchors in input pixels. The stride of a level is
    (H // H_l, W // W_l).
    """

    def __init__(self, sizes=((128, 256, 512),), aspect_ratios=((0.5, 1.0, 2.0),)) -> None:
        super().__init__()
        if not isinstance(sizes[0], list | tuple):
            sizes = tuple((s,) for s in sizes)
        if not isinstance(aspect_ratios[0], list | tuple):
            aspect_ratios = (tuple(aspect_ratios),) * len(sizes)
        if len(sizes) != len(aspect_ratios):
            raise InputError(f"{len(sizes)} levels of sizes but {len(aspect_ratios)} of aspect ratios")
        self.sizes = tuple(tuple(s) for s in sizes)
        self.aspect_ratios = tuple(tuple(a) for a in aspect_ratios)
        self.cell_anchors = [cell_anchors(s, a) for s, a in zip(self.sizes, self.aspect_ratios, strict=True)]

    def num_anchors_per_location(self) -> list[int]:
        """Anchors per cell at each level: len(sizes) * len(aspect_ratios)."""
        return [len(s) * len(a) for s, a in zip(self.sizes, self.aspect_ratios, strict=True)]

    def grid_anchors(self, grid_sizes: list[tuple[int, int]], strides: list[tuple[int, int]],
                     dtype=torch.float32, device=None) -> list[Tensor]:
        """Anchors of each level: list of Tensor[H_l * W_l * A_l, 4]."""
        if len(grid_sizes) != len(self.cell_anchors):
            raise InputError(f"{len(grid_sizes)} feature maps given, but the generator has "
                             f"{len(self.cell_anchors)} levels of sizes/aspect ratios")
        return [grid_anchors(base.to(dtype=dtype, device=device), g, s)
                for base, g, s in zip(self.cell_anchors, grid_sizes, strides, strict=True)]

    def forward(self, images, feature_maps: list[Tensor]) -> list[Tensor]:
        tensors = getattr(images, "tensors", images)
        image_size = tensors.shape[-2:]
        grid_sizes = [tuple(f.shape[-2:]) for f in feature_maps]
        strides = [(image_size[0] // g[0], image_size[1] // g[1]) for g in grid_sizes]
        dtype, device = feature_maps[0].dtype, feature_maps[0].device
        anchors = torch.cat(self.grid_anchors(grid_sizes, strides, dtype, device), dim=0)
        return [anchors.clone() for _ in range(tensors.shape[0])]

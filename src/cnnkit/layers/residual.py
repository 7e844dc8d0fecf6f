"""The residual blocks of ResNet, named as the curriculum names them.

A block's main path F(x) is either *basic* (two k x k convolutions, ResNet-18/34) or *bottleneck*
(1x1 reduce, k x k, 1x1 expand; ResNet-50/101/152); `filters` says which: two numbers for basic,
three for bottleneck, like the course's `filters = [F1, F2, F3]`.

- `IdentityBlock`: output = act(F(x) + x); input and output shapes are equal.
- `ConvolutionalBlock`: output = act(F(x) + P(x)), P a strided 1x1 convolution and norm (the projection
  shortcut) that brings x to F(x)'s shape when the channels or the resolution change.
- `PlainBlock`: output = act(F(x)), the same main path without any shortcut, for the degradation experiment
  (deep plain networks train worse than shallow ones; residual ones do not).

Parameter names are torchvision's (`conv1`, `bn1`, ..., `downsample.0`, `downsample.1`), so torchvision
ResNet checkpoints load into networks built from these blocks.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn

from cnnkit.errors import InputError
from cnnkit.layers.activations import LayerType, create_act, get_norm_layer


class _MainPathBlock(nn.Module):
    """The main path F(x) shared by the three blocks; subclasses add (or not) a shortcut.

    Args:
        in_channels: channels of x.
        filters: [F1, F2] for a basic block (two k x k convolutions) or [F1, F2, F3] for a bottleneck block.
        kernel_size: k of the k x k convolution(s) (the course's `f`); odd, padded to keep the size.
        stride: stride of the block (2 halves the resolution).
        stride_on: for bottleneck blocks, which convolution strides: "middle" (the k x k one, torchvision's
            "ResNet v1.5", slightly more accurate) or "first" (the first 1x1, as in the paper and the course).
        bias: give the convolutions a bias (the course's Keras model has them; redundant before a norm).
        norm_layer: normalisation class, factory or name, called with the channel count.
        act_layer: activation class, factory or name.
        zero_init_last: zero the scale of the last norm, so the block starts as its shortcut (identity
            mapping at initialisation, "zero_init_residual" in torchvision).
    """

    def __init__(
        self,
        in_channels: int,
        filters: Sequence[int],
        kernel_size: int = 3,
        stride: int = 1,
        *,
        stride_on: str = "middle",
        bias: bool = False,
        norm_layer: LayerType = nn.BatchNorm2d,
        act_layer: LayerType = nn.ReLU,
        zero_init_last: bool = False,
    ) -> None:
        super().__init__()
        filters = [int(f) for f in filters]
        if len(filters) not in (2, 3):
            raise InputError(f"filters must be [F1, F2] (basic) or [F1, F2, F3] (bottleneck), got {filters}")
        if kernel_size % 2 == 0:
            raise InputError(f"kernel_size must be odd so that the block keeps the size, got {kernel_size}")
        if stride_on not in ("middle", "first"):
            raise InputError(f"stride_on must be 'middle' or 'first', got {stride_on!r}")
        norm = get_norm_layer(norm_layer)
        if norm is None:
            raise InputError("residual blocks need a norm layer (their parameter layout has bn1, bn2 ...)")
        self.in_channels = in_channels
        self.filters = filters
        self.out_channels = filters[-1]
        self.stride = stride
        self.bottleneck = len(filters) == 3
        pad = kernel_size // 2
        if self.bottleneck:
            f1, f2, f3 = filters
            s1, s2 = (stride, 1) if stride_on == "first" else (1, stride)
            self.conv1 = nn.Conv2d(in_channels, f1, 1, s1, 0, bias=bias)
            self.bn1 = norm(f1)
            self.conv2 = nn.Conv2d(f1, f2, kernel_size, s2, pad, bias=bias)
            self.bn2 = norm(f2)
            self.conv3 = nn.Conv2d(f2, f3, 1, 1, 0, bias=bias)
            self.bn3 = norm(f3)
        else:
            f1, f2 = filters
            self.conv1 = nn.Conv2d(in_channels, f1, kernel_size, stride, pad, bias=bias)
            self.bn1 = norm(f1)
            self.conv2 = nn.Conv2d(f1, f2, kernel_size, 1, pad, bias=bias)
            self.bn2 = norm(f2)
        # One activation module, used after every convolution but the last and after the addition (as torchvision).
        self.act = create_act(act_layer, inplace=True)
        if zero_init_last:
            self.zero_init_last()

    @property
    def last_norm(self) -> nn.Module:
        """The norm closing the main path (its scale is what `zero_init_last` zeroes)."""
        return self.bn3 if self.bottleneck else self.bn2

    def zero_init_last(self) -> None:
        """Zero the last norm's scale so that F(x) = 0 at initialisation and the block starts as its shortcut."""
        weight = getattr(self.last_norm, "weight", None)
        if weight is not None:
            nn.init.zeros_(weight)

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        """The main path F(x), before the addition and the last activation. (B, C_in, H, W) -> (B, F_last, H', W')."""
        out = self.act(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.bottleneck:
            out = self.bn3(self.conv3(self.act(out)))
        return out


class IdentityBlock(_MainPathBlock):
    """Residual block whose shortcut is x itself: output = act(F(x) + x).

    Needs `filters[-1] == in_channels` and stride 1, since x is added unchanged.
    Args are those of the main path (see `_MainPathBlock`), without `stride`.
    """

    def __init__(self, in_channels: int, filters: Sequence[int], kernel_size: int = 3, **kwargs) -> None:
        super().__init__(in_channels, filters, kernel_size, 1, **kwargs)
        if self.out_channels != in_channels:
            raise InputError(
                f"an identity block adds x to F(x), so filters[-1] ({self.out_channels}) must equal in_channels "
                f"({in_channels}); use ConvolutionalBlock to change the channel count"
            )
        self.downsample = None  # torchvision's attribute: None means "identity shortcut"

    def shortcut(self, x: torch.Tensor) -> torch.Tensor:
        """The shortcut path: x unchanged."""
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.residual(x) + x)


class ConvolutionalBlock(_MainPathBlock):
    """Residual block with a projection shortcut: output = act(F(x) + BN(Conv1x1_stride(x))).

    Used where a stage starts: the shortcut's strided 1x1 convolution brings x to F(x)'s channels and size.
    Args are those of the main path (see `_MainPathBlock`); the shortcut convolution takes `bias` too.
    The default stride is 2, as the course's `convolutional_block(X, f, filters, s=2)`.
    """

    def __init__(
        self, in_channels: int, filters: Sequence[int], kernel_size: int = 3, stride: int = 2, **kwargs
    ) -> None:
        super().__init__(in_channels, filters, kernel_size, stride, **kwargs)
        norm = get_norm_layer(kwargs.get("norm_layer", nn.BatchNorm2d))
        self.downsample = nn.Sequential(
            nn.Conv2d(in_channels, self.out_channels, 1, stride, 0, bias=kwargs.get("bias", False)),
            norm(self.out_channels),
        )

    def shortcut(self, x: torch.Tensor) -> torch.Tensor:
        """The projection shortcut P(x). (B, C_in, H, W) -> (B, F_last, H / stride, W / stride)."""
        return self.downsample(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.residual(x) + self.downsample(x))


class PlainBlock(_MainPathBlock):
    """The main path alone, output = act(F(x)): a residual block with its shortcut removed.

    Takes the arguments of `ConvolutionalBlock` (with stride 1 by default) and any channel change.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.residual(x))

"""Depthwise separable convolution, the building block of MobileNet v1.

A standard f x f convolution from n_c to n_c' channels costs f*f*n_c*n_c' multiply-adds per output pixel.
Splitting it into a depthwise f x f convolution (one filter per input channel, `groups=n_c`) followed by a
pointwise 1x1 convolution costs f*f*n_c + n_c*n_c', i.e. a fraction 1/n_c' + 1/f^2 of the standard one
(about 1/8 to 1/9 for 3x3 kernels) for nearly the same accuracy.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from cnnkit.layers.activations import LayerType
from cnnkit.layers.conv_bn_act import ConvBnAct


def separable_cost_ratio(out_channels: int, kernel_size: int) -> float:
    """Multiply-adds of a depthwise separable convolution over those of the standard one: 1/n_c' + 1/f^2."""
    return 1.0 / out_channels + 1.0 / kernel_size**2


class DepthwiseSeparableConv(nn.Module):
    """Depthwise f x f convolution (+ norm + act), then pointwise 1x1 convolution (+ norm + act).

    Args:
        in_channels: input channels n_c.
        out_channels: output channels n_c'.
        stride: stride of the depthwise convolution (the pointwise one never strides).
        kernel_size: depthwise kernel size f.
        norm_layer: normalisation class (or name) after each convolution, or None.
        act_layer: activation class (or name) after each convolution, or None.

    Shapes:
        (B, in_channels, H, W) -> (B, out_channels, ceil(H / stride), ceil(W / stride)).
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, kernel_size: int = 3,
                 norm_layer: LayerType = nn.BatchNorm2d, act_layer: LayerType = nn.ReLU):
        super().__init__()
        self.in_channels, self.out_channels, self.stride = in_channels, out_channels, stride
        self.depthwise = ConvBnAct(in_channels, in_channels, kernel_size, stride, groups=in_channels,
                                   norm_layer=norm_layer, act_layer=act_layer)
        self.pointwise = ConvBnAct(in_channels, out_channels, 1, norm_layer=norm_layer, act_layer=act_layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.depthwise(x))

"""Inverted residual blocks: MobileNet v2's bottleneck and EfficientNet's MBConv.

A classic residual bottleneck goes wide -> narrow -> wide. The inverted one goes narrow -> wide -> narrow:
a 1x1 convolution expands the channels t times, a cheap depthwise convolution filters them, and a 1x1
*linear* projection (no activation: a ReLU on few channels destroys information) brings them back. The
skip connection joins the narrow ends, and only where shapes allow: stride 1 and as many channels out as in.

Parameter names are torchvision's (`conv.*` for MobileNet v2, `block.*` for EfficientNet).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from cnnkit.errors import InputError
from cnnkit.layers.activations import LayerType, get_norm_layer
from cnnkit.layers.conv_bn_act import ConvBnAct
from cnnkit.layers.squeeze_excite import SqueezeExcitation


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round a channel count to a multiple of `divisor` without losing more than 10% (width multipliers).

    The rule of the TensorFlow MobileNet reference, kept so that scaled networks have the published widths.
    """
    min_value = divisor if min_value is None else min_value
    new_value = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if new_value < 0.9 * value:
        new_value += divisor
    return new_value


def stochastic_depth(x: torch.Tensor, p: float, training: bool = True) -> torch.Tensor:
    """Drop whole samples of a residual branch with probability `p`, scaling survivors by 1 / (1 - p).

    Huang et al., "Deep Networks with Stochastic Depth" (2016), "row" mode: one coin per sample, so the
    block reduces to its skip connection for that sample. Identity in evaluation or when p == 0.

    Args:
        x: Tensor[B, ...], the residual branch.
        p: drop probability in [0, 1].
        training: apply only in training mode.
    """
    if not 0.0 <= p <= 1.0:
        raise InputError(f"stochastic depth probability must be in [0, 1], got {p}")
    if not training or p == 0.0:
        return x
    survival = 1.0 - p
    noise = torch.empty((x.shape[0],) + (1,) * (x.ndim - 1), dtype=x.dtype, device=x.device).bernoulli_(survival)
    if survival > 0.0:
        noise.div_(survival)  # keeps the expected output equal to the input
    return x * noise


class StochasticDepth(nn.Module):
    """Module form of `stochastic_depth` (no parameters)."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return stochastic_depth(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class InvertedResidual(nn.Module):
    """MobileNet v2 block: 1x1 expand (ReLU6) -> 3x3 depthwise (ReLU6) -> 1x1 linear projection [+ input].

    Args:
        in_channels: input channels.
        out_channels: output channels.
        stride: stride of the depthwise convolution (1 or 2).
        expand_ratio: expansion factor t; with t == 1 there is no expansion convolution.
        norm_layer: normalisation class or name.
        act_layer: activation class or name, after the expansion and depthwise convolutions.

    Shapes:
        (B, in_channels, H, W) -> (B, out_channels, ceil(H / stride), ceil(W / stride)).
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int, expand_ratio: float,
                 norm_layer: LayerType = nn.BatchNorm2d, act_layer: LayerType = nn.ReLU6):
        super().__init__()
        if stride not in (1, 2):
            raise InputError(f"inverted residual stride must be 1 or 2, got {stride}")
        self.in_channels, self.out_channels, self.stride = in_channels, out_channels, stride
        hidden = int(round(in_channels * expand_ratio))
        self.use_res_connect = stride == 1 and in_channels == out_channels
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(ConvBnAct(in_channels, hidden, 1, norm_layer=norm_layer, act_layer=act_layer))
        layers += [
            ConvBnAct(hidden, hidden, 3, stride, groups=hidden, norm_layer=norm_layer, act_layer=act_layer),
            # Flat conv + norm (not a nested Sequential): torchvision's keys are conv.N and conv.N+1
            nn.Conv2d(hidden, out_channels, 1, bias=False),
            get_norm_layer(norm_layer)(out_channels),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return x + y if self.use_res_connect else y


class MBConv(nn.Module):
    """EfficientNet block: inverted residual with a k x k depthwise convolution, SiLU, squeeze-excitation,
    and stochastic depth on the residual branch.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        kernel_size: depthwise kernel size (3 or 5 in EfficientNet).
        stride: depthwise stride.
        expand_ratio: expansion factor; 1 means no expansion convolution.
        se_ratio: squeeze width as a fraction of `in_channels` (0 disables squeeze-excitation).
        stochastic_depth_prob: probability of dropping the residual branch per sample during training.
        norm_layer: normalisation class or name.
        act_layer: activation class or name.

    Shapes:
        (B, in_channels, H, W) -> (B, out_channels, ceil(H / stride), ceil(W / stride)).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int, expand_ratio: float,
                 se_ratio: float = 0.25, stochastic_depth_prob: float = 0.0,
                 norm_layer: LayerType = nn.BatchNorm2d, act_layer: LayerType = nn.SiLU):
        super().__init__()
        if stride not in (1, 2):
            raise InputError(f"MBConv stride must be 1 or 2, got {stride}")
        self.in_channels, self.out_channels, self.stride = in_channels, out_channels, stride
        self.use_res_connect = stride == 1 and in_channels == out_channels
        expanded = make_divisible(in_channels * expand_ratio, 8)
        layers: list[nn.Module] = []
        if expanded != in_channels:
            layers.append(ConvBnAct(in_channels, expanded, 1, norm_layer=norm_layer, act_layer=act_layer))
        layers.append(ConvBnAct(expanded, expanded, kernel_size, stride, groups=expanded,
                                norm_layer=norm_layer, act_layer=act_layer))
        if se_ratio > 0:
            # The squeeze width follows the block's input channels, not the expanded ones (as in the paper)
            layers.append(SqueezeExcitation(expanded, max(1, int(in_channels * se_ratio)), act_layer=act_layer))
        layers.append(ConvBnAct(expanded, out_channels, 1, norm_layer=norm_layer, act_layer=None))
        self.block = nn.Sequential(*layers)
        self.stochastic_depth = StochasticDepth(stochastic_depth_prob)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.block(x)
        if self.use_res_connect:
            y = self.stochastic_depth(y) + x
        return y

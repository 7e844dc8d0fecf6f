"""Convolution -> normalisation -> activation, the unit most convolutional networks are made of."""

from __future__ import annotations

import torch.nn as nn

from cnnkit.layers.activations import LayerType, create_act, get_act_layer, get_norm_layer


class ConvBnAct(nn.Sequential):
    """Conv2d, then an optional normalisation, then an optional activation.

    A `nn.Sequential` indexed 0 (conv), 1 (norm), 2 (activation), as torchvision's `Conv2dNormActivation`,
    so models built on it keep torchvision's state-dict keys (`features.0.0.weight`, `features.0.1.running_mean`).
    A skipped norm or activation is left out, not replaced by an identity, so the indices stay those of torchvision.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        kernel_size: square kernel size.
        stride: convolution stride.
        padding: zero padding; None pads `dilation * (kernel_size - 1) // 2`, which keeps the size for odd
            kernels at stride 1 ("same").
        groups: convolution groups (`groups == in_channels` is a depthwise convolution).
        dilation: convolution dilation.
        bias: convolution bias; None means "only without a norm layer", since a norm cancels the bias anyway.
        norm_layer: normalisation class, factory or name, called with `out_channels`; None for no norm.
        act_layer: activation class, factory or name; None for no activation.
        inplace: run the activation in place where it supports it.

    Shapes:
        (B, in_channels, H, W) -> (B, out_channels, H', W') with H' = (H + 2p - d(k - 1) - 1) // stride + 1.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        padding: int | None = None,
        *,
        groups: int = 1,
        dilation: int = 1,
        bias: bool | None = None,
        norm_layer: LayerType = nn.BatchNorm2d,
        act_layer: LayerType = nn.ReLU,
        inplace: bool = True,
    ) -> None:
        norm_factory = get_norm_layer(norm_layer)
        if padding is None:
            padding = dilation * (kernel_size - 1) // 2
        if bias is None:
            bias = norm_factory is None
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, dilation=dilation, groups=groups,
                      bias=bias)
        ]
        if norm_factory is not None:
            layers.append(norm_factory(out_channels))
        act_factory = get_act_layer(act_layer)
        if act_factory is not None:
            layers.append(create_act(act_factory, inplace=inplace))
        super().__init__(*layers)
        self.out_channels = out_channels

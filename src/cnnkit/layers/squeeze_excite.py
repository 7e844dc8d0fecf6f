"""Squeeze-and-excitation: reweight channels by a gate computed from their global average.

Hu et al., "Squeeze-and-Excitation Networks" (2018). EfficientNet puts one inside every MBConv block.
Parameter names (`fc1`, `fc2`) are torchvision's, so its EfficientNet checkpoints load unchanged.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from cnnkit.layers.activations import LayerType, create_act


class SqueezeExcitation(nn.Module):
    """x * sigmoid(fc2(act(fc1(mean_hw(x))))), with 1x1 convolutions as the two fully connected layers.

    Args:
        in_channels: channels of the input (and output).
        squeeze_channels: width of the bottleneck between fc1 and fc2.
        act_layer: activation class or name after fc1 (EfficientNet: nn.SiLU; the SE paper: nn.ReLU).
        gate_layer: activation class or name producing the per-channel scale (nn.Sigmoid: in [0, 1]).
    """

    def __init__(self, in_channels: int, squeeze_channels: int, act_layer: LayerType = nn.ReLU,
                 gate_layer: LayerType = nn.Sigmoid):
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        # 1x1 convolutions rather than nn.Linear: same maths, no reshape, and torchvision's key shapes (C', C, 1, 1)
        self.fc1 = nn.Conv2d(in_channels, squeeze_channels, 1)
        self.fc2 = nn.Conv2d(squeeze_channels, in_channels, 1)
        self.activation = create_act(act_layer)
        self.scale_activation = create_act(gate_layer, inplace=False)

    def scale(self, x: torch.Tensor) -> torch.Tensor:
        """The per-channel gate, (B, C, 1, 1), for inspection or visualisation."""
        s = self.avgpool(x)  # (B, C, 1, 1)
        return self.scale_activation(self.fc2(self.activation(self.fc1(s))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale(x)

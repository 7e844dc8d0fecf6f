"""The inception module of GoogLeNet (Szegedy et al., "Going Deeper with Convolutions", 2014).

Instead of choosing one filter size, run several in parallel and concatenate their outputs along the
channels: a 1x1 branch, a 3x3 branch, a 5x5 branch and a 3x3 max-pool branch. The 1x1 "bottleneck"
convolutions in front of the 3x3 and 5x5 branches (and after the pool) shrink the channels first, which
cuts the cost by about ten times: that is what makes stacking nine of these modules affordable.

Parameter names are torchvision's (`branch1.conv.weight`, `branch2.0.bn.running_mean` ...).

Example:
    >>> m = InceptionModule(192, 64, 96, 128, 16, 32, 32)   # GoogLeNet's inception (3a)
    >>> m.out_channels                                      # 64 + 128 + 32 + 32
    256
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class BasicConv2d(nn.Module):
    """Conv2d (no bias) -> BatchNorm2d(eps=0.001) -> ReLU, named `conv` and `bn` as in torchvision.

    Batch norm is not in the 2014 paper (it came months later); torchvision's GoogLeNet, whose checkpoint
    this layout loads, uses it, with TensorFlow's eps of 0.001.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, padding: int = 0):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, bias=False)
        self.bn = nn.BatchNorm2d(out_channels, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


class InceptionModule(nn.Module):
    """Four parallel branches concatenated along channels; height and width are preserved.

    Args:
        in_channels: input channels.
        ch1x1: output channels of the 1x1 branch.
        ch3x3red: bottleneck (1x1) channels in front of the 3x3 convolution.
        ch3x3: output channels of the 3x3 branch.
        ch5x5red: bottleneck (1x1) channels in front of the "5x5" convolution.
        ch5x5: output channels of the "5x5" branch.
        pool_proj: output channels of the 1x1 convolution after the 3x3 max-pool.
        branch3_kernel_size: kernel of the third branch. 5 is the paper's; torchvision's GoogLeNet uses 3
            (a known bug kept for its checkpoint), which `cnnkit.models.googlenet` follows by default.

    Shapes:
        (B, in_channels, H, W) -> (B, ch1x1 + ch3x3 + ch5x5 + pool_proj, H, W).
    """

    def __init__(self, in_channels: int, ch1x1: int, ch3x3red: int, ch3x3: int, ch5x5red: int, ch5x5: int,
                 pool_proj: int, branch3_kernel_size: int = 5):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = ch1x1 + ch3x3 + ch5x5 + pool_proj
        self.branch1 = BasicConv2d(in_channels, ch1x1, 1)
        self.branch2 = nn.Sequential(BasicConv2d(in_channels, ch3x3red, 1), BasicConv2d(ch3x3red, ch3x3, 3, padding=1))
        k = branch3_kernel_size
        self.branch3 = nn.Sequential(BasicConv2d(in_channels, ch5x5red, 1),
                                     BasicConv2d(ch5x5red, ch5x5, k, padding=(k - 1) // 2))
        # ceil_mode is harmless here (stride 1) and matches torchvision's module exactly
        self.branch4 = nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1, ceil_mode=True),
                                     BasicConv2d(in_channels, pool_proj, 1))

    def forward_branches(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The four branch outputs before concatenation, each (B, ch_i, H, W)."""
        return [self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat(self.forward_branches(x), dim=1)


class InceptionAux(nn.Module):
    """Auxiliary classifier attached to an intermediate stage (GoogLeNet has two, used in training only).

    Their loss, weighted 0.3 in the paper, pushes gradient into the middle of the deep network and acts as
    a regulariser. Average-pool to 4x4 -> 1x1 conv to 128 -> fc 1024 -> ReLU -> dropout -> fc num_classes.

    Args:
        in_channels: channels of the stage it is attached to.
        num_classes: classes predicted.
        dropout: dropout probability before the last layer (0.7 in the paper).
    """

    def __init__(self, in_channels: int, num_classes: int, dropout: float = 0.7):
        super().__init__()
        self.conv = BasicConv2d(in_channels, 128, 1)
        self.fc1 = nn.Linear(128 * 4 * 4, 1024)
        self.fc2 = nn.Linear(1024, num_classes)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # adaptive pooling gives 4x4 at any input size (the paper's 5x5/3 pool assumes a 14x14 map)
        x = self.conv(F.adaptive_avg_pool2d(x, (4, 4)))  # (B, 128, 4, 4)
        x = self.dropout(F.relu(self.fc1(torch.flatten(x, 1))))
        return self.fc2(x)

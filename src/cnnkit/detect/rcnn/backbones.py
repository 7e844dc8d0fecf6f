"""Feature extractors for the region detectors: one stage of any zoo backbone, or a ResNet with a feature pyramid
(torchvision's `BackboneWithFPN` layout: `backbone.body.*`, `backbone.fpn.inner_blocks.i.0.*`, `layer_blocks.i.0.*`).
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from cnnkit.errors import InputError


class FrozenBatchNorm2d(nn.Module):
    """BatchNorm with fixed statistics and affine parameters, all buffers (torchvision's: no num_batches_tracked)."""

    def __init__(self, num_features: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.register_buffer("weight", torch.ones(num_features))
        self.register_buffer("bias", torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))

    def forward(self, x: Tensor) -> Tensor:
        scale = self.weight * (self.running_var + self.eps).rsqrt()
        shift = self.bias - self.running_mean * scale
        return x * scale[None, :, None, None] + shift[None, :, None, None]


def stage_strides(body: nn.Module, in_chans: int = 3, size: int = 64) -> list[int]:
    """The stride of every stage of a zoo backbone, measured on a small input."""
    with torch.no_grad():
        was = body.training
        body.eval()
        feats = body.forward_stages(torch.zeros(1, in_chans, size, size))
        body.train(was)
    return [size // f.shape[-1] for f in feats]


class StageFeatures(nn.Module):
    """One stage of a zoo backbone as the detector's single feature map {"0": (B, C, H/s, W/s)}.

    Args:
        body: the zoo Backbone (its classifier unused; build it with num_classes=0).
        stride: the stride of the stage to read (the deepest stage with this stride).
    """

    def __init__(self, body: nn.Module, stride: int = 8) -> None:
        super().__init__()
        strides = stage_strides(body)
        if stride not in strides:
            raise InputError(f"{type(body).__name__} has no stage of stride {stride} (its strides: {strides})")
        self.body = body
        self.stage = max(i for i, s in enumerate(strides) if s == stride)
        self.stride = stride
        self.out_channels = body.stage_channels[self.stage]

    def forward(self, x: Tensor) -> OrderedDict[str, Tensor]:
        return OrderedDict([("0", self.body.forward_stages(x)[self.stage])])


class FeaturePyramidNetwork(nn.Module):
    """FPN (Lin et al. 2017): 1x1 lateral convolutions, top-down nearest upsampling and sum, 3x3 output
    convolutions; plus a max-pooled extra level "pool" (torchvision's LastLevelMaxPool)."""

    def __init__(self, in_channels_list: list[int], out_channels: int) -> None:
        super().__init__()
        self.inner_blocks = nn.ModuleList(nn.Sequential(nn.Conv2d(c, out_channels, 1)) for c in in_channels_list)
        self.layer_blocks = nn.ModuleList(nn.Sequential(nn.Conv2d(out_channels, out_channels, 3, padding=1))
                                          for _ in in_channels_list)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_uniform_(m.weight, a=1)
                nn.init.constant_(m.bias, 0)

    def forward(self, xs: list[Tensor]) -> OrderedDict[str, Tensor]:
        last = self.inner_blocks[-1](xs[-1])
        outs = [self.layer_blocks[-1](last)]
        for i in range(len(xs) - 2, -1, -1):
            lateral = self.inner_blocks[i](xs[i])
            last = lateral + F.interpolate(last, size=lateral.shape[-2:], mode="nearest")
            outs.insert(0, self.layer_blocks[i](last))
        names = [str(i) for i in range(len(outs))]
        outs.append(F.max_pool2d(outs[-1], 1, 2, 0))
        return OrderedDict(zip([*names, "pool"], outs, strict=True))


class BackboneWithFPN(nn.Module):
    """A zoo ResNet's layer1..layer4 (stages 1..4 of `forward_stages`) through an FPN of `out_channels`."""

    def __init__(self, body: nn.Module, out_channels: int = 256, stages=(1, 2, 3, 4)) -> None:
        super().__init__()
        self.body = body
        self.stages = tuple(stages)
        self.fpn = FeaturePyramidNetwork([body.stage_channels[i] for i in self.stages], out_channels)
        self.out_channels = out_channels

    def forward(self, x: Tensor) -> OrderedDict[str, Tensor]:
        feats = self.body.forward_stages(x)
        return self.fpn([feats[i] for i in self.stages])

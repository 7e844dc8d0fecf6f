"""VGG (Simonyan and Zisserman 2014): only 3x3 convolutions (stride 1, "same") and 2x2 max pools, doubling the
channels 64 -> 128 -> 256 -> 512 as the resolution halves, then three fully connected layers.

`vgg11`, `vgg13`, `vgg16`, `vgg19` are the paper's configurations A, B, D, E; `_bn` adds BatchNorm after every
convolution. Layout, parameter names and shapes are torchvision's (`features.N`, `classifier.0/3/6`), so
torchvision checkpoints such as vgg19-dcbb9e9d.pth load unchanged. vgg16 has 138,357,544 parameters, vgg19
143,667,240. An adaptive 7x7 average pool before the classifier lets any input from 32x32 up through.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from cnnkit.models.backbone import MLPHeadBackbone, with_weights
from cnnkit.models.registry import register_model

# Output channels of each 3x3 convolution; "M" is a 2x2/2 max pool.
_CONFIGS: dict[str, list[int | str]] = {
    "A": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "B": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "D": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "E": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"],
}


def _linear(in_features: int, out_features: int) -> nn.Linear:
    # fc6 holds 100M weights: skip PyTorch's default initialisation, which `_init_weights` overwrites anyway and
    # which would double the construction time. The default device keeps `with torch.device("meta")` working.
    return nn.utils.skip_init(nn.Linear, in_features, out_features, device=torch.get_default_device())


class VGG(MLPHeadBackbone):
    """A VGG network from a configuration list.

    Args:
        config: channels of each convolution, "M" for a max pool (see `_CONFIGS`).
        num_classes: classifier outputs; 0 leaves no last layer (`forward` returns the 4096 fc7 features).
        in_chans: input image channels.
        batch_norm: BatchNorm after every convolution (the `_bn` variants).
        dropout: dropout probability after fc6 and fc7.

    Stages end at each max pool (64, 128, 256, 512, 512 channels at 1/2 ... 1/32 of the input size);
    `num_features` is the 512 channels of the last feature map, `head_hidden_size` the 4096 units that
    `forward_head(..., pre_logits=True)` returns and the last fully connected layer takes (timm's names).
    """

    def __init__(
        self,
        config: list[int | str],
        *,
        num_classes: int = 1000,
        in_chans: int = 3,
        batch_norm: bool = False,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = in_chans
        self.stage_channels = []
        for v in config:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
                self.stage_channels.append(channels)
            else:
                layers.append(nn.Conv2d(channels, v, 3, padding=1))
                if batch_norm:
                    layers.append(nn.BatchNorm2d(v))
                layers.append(nn.ReLU(inplace=True))
                channels = v
        self.features = nn.Sequential(*layers)
        self.default_input_size = (in_chans, 224, 224)
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.num_features = channels
        self.head_hidden_size = 4096
        self.num_classes = num_classes
        self.classifier = nn.Sequential(
            _linear(channels * 7 * 7, 4096),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            _linear(4096, 4096),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            _linear(4096, num_classes) if num_classes > 0 else nn.Identity(),
        )
        self._init_weights()

    def _init_weights(self) -> None:
        # torchvision's initialisation, so a model trained from scratch here behaves as one trained there
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)


def _vgg(config: str, batch_norm: bool, *, weights=None, **kwargs) -> VGG:
    model = VGG(_CONFIGS[config], batch_norm=batch_norm, **kwargs)
    return with_weights(model, weights)


@register_model
def vgg11(*, num_classes: int = 1000, in_chans: int = 3, weights=None, **kwargs) -> VGG:
    """VGG-11 (configuration A): 132,863,336 parameters."""
    return _vgg("A", False, num_classes=num_classes, in_chans=in_chans, weights=weights, **kwargs)


@register_model
def vgg11_bn(*, num_classes: int = 1000, in_chans: int = 3, weights=None, **kwargs) -> VGG:
    """VGG-11 with BatchNorm: 132,868,840 parameters."""
    return _vgg("A", True, num_classes=num_classes, in_chans=in_chans, weights=weights, **kwargs)


@register_model
def vgg13(*, num_classes: int = 1000, in_chans: int = 3, weights=None, **kwargs) -> VGG:
    """VGG-13 (configuration B): 133,047,848 parameters."""
    return _vgg("B", False, num_classes=num_classes, in_chans=in_chans, weights=weights, **kwargs)


@register_model
def vgg13_bn(*, num_classes: int = 1000, in_chans: int = 3, weights=None, **kwargs) -> VGG:
    """VGG-13 with BatchNorm: 133,053,736 parameters."""
    return _vgg("B", True, num_classes=num_classes, in_chans=in_chans, weights=weights, **kwargs)


@register_model
def vgg16(*, num_classes: int = 1000, in_chans: int = 3, weights=None, **kwargs) -> VGG:
    """VGG-16 (configuration D): 138,357,544 parameters."""
    return _vgg("D", False, num_classes=num_classes, in_chans=in_chans, weights=weights, **kwargs)


@register_model
def vgg16_bn(*, num_classes: int = 1000, in_chans: int = 3, weights=None, **kwargs) -> VGG:
    """VGG-16 with BatchNorm: 138,365,992 parameters."""
    return _vgg("D", True, num_classes=num_classes, in_chans=in_chans, weights=weights, **kwargs)


@register_model
def vgg19(*, num_classes: int = 1000, in_chans: int = 3, weights=None, **kwargs) -> VGG:
    """VGG-19 (configuration E): 143,667,240 parameters."""
    return _vgg("E", False, num_classes=num_classes, in_chans=in_chans, weights=weights, **kwargs)


@register_model
def vgg19_bn(*, num_classes: int = 1000, in_chans: int = 3, weights=None, **kwargs) -> VGG:
    """VGG-19 with BatchNorm: 143,678,248 parameters."""
    return _vgg("E", True, num_classes=num_classes, in_chans=in_chans, weights=weights, **kwargs)

"""The contract every classification backbone keeps, so that detection, segmentation and face models
can reuse any of them.

A family subclasses `Backbone` and implements `forward_stages`, `forward_head`, `get_classifier`,
`reset_classifier`, and sets `num_features` and `stage_channels`. Parameter names inside stay those of
torchvision where the architecture is the same (so `features.0.weight`, `layer1.0.conv1.weight` ...).
"""

from __future__ import annotations

import os
from collections.abc import Collection

import torch
import torch.nn as nn


class Backbone(nn.Module):
    """Base class of the zoo's classifiers.

    Attributes:
        num_features: channels of the last feature map (what `forward_features` returns), as in timm.
        head_hidden_size: width of what `forward_head(x, pre_logits=True)` returns; equals `num_features` unless
            the head has hidden layers (VGG, AlexNet, LeNet: 4096, 4096, 84); read it with
            `getattr(model, "head_hidden_size", model.num_features)`.
        stage_channels: channels of each feature map `forward_stages` returns, in order.
        default_input_size: (C, H, W) the published network expects.
    """

    num_features: int
    stage_channels: list[int]
    default_input_size: tuple[int, int, int] = (3, 224, 224)

    @property
    def out_channels(self) -> list[int]:
        """Alias of `stage_channels`, the name detection and segmentation heads use."""
        return list(self.stage_channels)

    def forward_stages(self, x: torch.Tensor) -> list[torch.Tensor]:
        """One feature map per stage (each halving resolution, roughly), shallow to deep."""
        raise NotImplementedError

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The last feature map before the head: (B, num_features, h, w) for convolutional networks."""
        return self.forward_stages(x)[-1]

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Pooling (where the family has it) and the classifier; `pre_logits` stops before the last layer."""
        raise NotImplementedError

    def get_classifier(self) -> nn.Module:
        raise NotImplementedError

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the last classification layer by a fresh one with `num_classes` outputs (0: identity)."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def classifier_layer(in_features: int, num_classes: int) -> nn.Module:
    """The last classification layer: Linear to `num_classes`, or Identity for 0 (a headless feature extractor)."""
    return nn.Linear(in_features, num_classes) if num_classes > 0 else nn.Identity()


def collect_stages(layers: nn.Sequential, x: torch.Tensor, stage_ends: Collection[int]) -> list[torch.Tensor]:
    """Run `layers` in order and keep the output of each layer whose index is in `stage_ends`."""
    stages = []
    for i, layer in enumerate(layers):
        x = layer(x)
        if i in stage_ends:
            stages.append(x)
    return stages


def with_weights(model: nn.Module, weights: str | os.PathLike | None) -> nn.Module:
    """Load the user's weights file into `model` when one is given (the `weights=` argument of every builder)."""
    if weights is not None:
        from cnnkit.models.pretrained import refuse_unknown_tag
        from cnnkit.models.weights import load_weights  # lazy: the weights module imports the registry

        refuse_unknown_tag(model, weights)  # "imagenet" for a family without registered weights: say so
        load_weights(model, weights)
    return model


def stage_ends_from_strides(strides: list[int]) -> list[int]:
    """Index of the last layer at each resolution: the layer before every stride-2 one, and the very last."""
    return [i - 1 for i, s in enumerate(strides) if s == 2 and i > 0] + [len(strides) - 1]


class MLPHeadBackbone(Backbone):
    """torchvision's AlexNet and VGG layout: `features` (convolutions and max pools), `avgpool` to a fixed grid, and
    `classifier`, an nn.Sequential of hidden layers ending with the Linear to the classes.

    A stage ends at each max pool; `forward_head(pre_logits=True)` stops before the last Linear.
    """

    features: nn.Sequential
    avgpool: nn.Module
    classifier: nn.Sequential

    def forward_stages(self, x: torch.Tensor) -> list[torch.Tensor]:
        pools = [i for i, layer in enumerate(self.features) if isinstance(layer, nn.MaxPool2d)]
        return collect_stages(self.features, x, pools)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = torch.flatten(self.avgpool(x), 1)  # (B, C * grid * grid)
        return self.classifier[:-1](x) if pre_logits else self.classifier(x)

    def get_classifier(self) -> nn.Module:
        return self.classifier[-1]

    def reset_classifier(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.classifier[-1] = classifier_layer(self.head_hidden_size, num_classes)


class DropoutLinearHeadBackbone(Backbone):
    """torchvision's MobileNet and EfficientNet layout: `features` (nn.Sequential) whose stages end at the indices
    in `stage_ends`, global average pooling `avgpool`, and `classifier` = (Dropout, Linear).

    `forward_head(pre_logits=True)` returns the pooled features after the dropout.
    """

    features: nn.Sequential
    stage_ends: list[int]
    avgpool: nn.Module
    classifier: nn.Sequential

    def forward_stages(self, x: torch.Tensor) -> list[torch.Tensor]:
        return collect_stages(self.features, x, self.stage_ends)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.classifier[0](torch.flatten(self.avgpool(x), 1))  # (B, num_features)
        return x if pre_logits else self.classifier[1](x)

    def get_classifier(self) -> nn.Module:
        return self.classifier[1]

    def reset_classifier(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.classifier[1] = classifier_layer(self.num_features, num_classes)

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
        from cnnkit.models.weights import load_weights  # lazy: the weights module imports the registry

        load_weights(model, weights)
    return model

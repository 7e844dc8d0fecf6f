"""The contract every classification backbone keeps, so that detection, segmentation and face models
can reuse any of them.

A family subclasses `Backbone` and implements `forward_stages`, `forward_head`, `get_classifier`,
`reset_classifier`, and sets `num_features` and `stage_channels`. Parameter names inside stay those of
torchvision where the architecture is the same (so `features.0.weight`, `layer1.0.conv1.weight` ...).
"""

from __future__ import annotations

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

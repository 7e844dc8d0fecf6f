"""Face encoders f(x): a backbone, global pooling, a linear embedding, L2 normalisation.

Two ways to get one:
- `SmallFaceNet`, the CPU default for the built-in 32x32 `faces` (about 0.2M parameters, 17M multiply-adds);
- `Embedder(create_model("resnet18", num_classes=0), dim)`: any zoo backbone's pre-logits features under an
  embedding head.

Both keep the backbone contract with the embedding layer as the "classifier", so the registry's tests, the
trainer and `reset_classifier` work on them: the registry's `num_classes` is the embedding width, and
`reset_classifier(0)` leaves the pooled features (unnormalised).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from cnnkit.layers.conv_bn_act import ConvBnAct
from cnnkit.models.backbone import Backbone, classifier_layer


class _EmbeddingHead(Backbone):
    """The part every encoder shares: pooled features -> Linear -> L2 normalisation."""

    task = "metric_learning"
    embedding: nn.Module

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """(B, C, h, w) feature map (or (B, C) features) -> (B, dim) unit vectors, or (B, C) with pre_logits."""
        x = self.pool_features(x)
        if pre_logits:
            return x
        if isinstance(self.embedding, nn.Identity):
            return x
        return F.normalize(self.embedding(x), dim=1)

    def pool_features(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean((2, 3)) if x.ndim == 4 else x

    def get_classifier(self) -> nn.Module:
        return self.embedding

    def reset_classifier(self, num_classes: int) -> None:
        self.embedding = classifier_layer(self.head_hidden_size, num_classes)

    @property
    def embedding_dim(self) -> int:
        return self.embedding.out_features if isinstance(self.embedding, nn.Linear) else self.head_hidden_size


class SmallFaceNet(_EmbeddingHead):
    """A small encoder for CPU training on 32x32 faces: four conv-BN-ReLU stages with max pooling.

    Args:
        embedding_dim: width of the unit-length embedding (0: the 128 pooled features, unnormalised).
        in_chans: input channels.
        width: channels of the first stage (doubling per stage up to 4 * width).

    Stages: 32x32 (w), 16x16 (2w), 8x8 (4w), 4x4 (4w) for a 32x32 input.
    """

    default_input_size = (3, 32, 32)

    def __init__(self, *, embedding_dim: int = 64, in_chans: int = 3, width: int = 32) -> None:
        super().__init__()
        c = [width, 2 * width, 4 * width, 4 * width]
        self.default_input_size = (in_chans, 32, 32)
        self.stages = nn.ModuleList([
            nn.Sequential(ConvBnAct(in_chans, c[0]), ConvBnAct(c[0], c[0])),
            nn.Sequential(nn.MaxPool2d(2), ConvBnAct(c[0], c[1])),
            nn.Sequential(nn.MaxPool2d(2), ConvBnAct(c[1], c[2])),
            nn.Sequential(nn.MaxPool2d(2), ConvBnAct(c[2], c[3])),
        ])
        self.stage_channels = c
        self.num_features = self.head_hidden_size = c[-1]
        self.embedding = classifier_layer(c[-1], embedding_dim)

    def forward_stages(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = []
        for stage in self.stages:
            x = stage(x)
            out.append(x)
        return out


class Embedder(_EmbeddingHead):
    """Any zoo backbone under an L2-normalised embedding head.

    Args:
        backbone: a `Backbone` (its own classifier is removed: `reset_classifier(0)`).
        embedding_dim: embedding width (0: the backbone's pre-logits features, unnormalised).
    """

    def __init__(self, backbone: Backbone, embedding_dim: int = 128) -> None:
        super().__init__()
        backbone.reset_classifier(0)
        self.backbone = backbone
        self.default_input_size = backbone.default_input_size
        self.stage_channels = list(backbone.stage_channels)
        self.num_features = backbone.num_features
        self.head_hidden_size = getattr(backbone, "head_hidden_size", backbone.num_features)
        self.embedding = classifier_layer(self.head_hidden_size, embedding_dim)

    def forward_stages(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.backbone.forward_stages(x)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone.forward_features(x)

    def pool_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone.forward_head(x, pre_logits=True)  # the backbone's own pooling (and hidden layers)

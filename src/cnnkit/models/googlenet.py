"""GoogLeNet (Inception v1), Szegedy et al., "Going Deeper with Convolutions" (2014).

A 7x7 stem, then nine inception modules in three groups separated by max-pools, global average pooling and
one fully connected layer: 22 layers deep with 12x fewer parameters than AlexNet. Two auxiliary classifiers
hang off inception (4a) and (4d) during training.

The layout (batch norm, parameter names) is torchvision's, so its checkpoint loads unchanged. One quirk is
kept for that reason: torchvision's "5x5" branch uses a 3x3 kernel. `paper_5x5=True` builds the paper's 5x5
kernels instead (7,005,832 parameters rather than 6,624,904; torchvision checkpoints then no longer load).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn as nn

from cnnkit.layers.inception import BasicConv2d, InceptionAux, InceptionModule
from cnnkit.models.backbone import Backbone, classifier_layer
from cnnkit.models.registry import register_model

# (in, 1x1, 3x3 reduce, 3x3, 5x5 reduce, 5x5, pool proj) per inception module: Table 1 of the paper
_INCEPTION_CFG = {
    "3a": (192, 64, 96, 128, 16, 32, 32),
    "3b": (256, 128, 128, 192, 32, 96, 64),
    "4a": (480, 192, 96, 208, 16, 48, 64),
    "4b": (512, 160, 112, 224, 24, 64, 64),
    "4c": (512, 128, 128, 256, 24, 64, 64),
    "4d": (512, 112, 144, 288, 32, 64, 64),
    "4e": (528, 256, 160, 320, 32, 128, 128),
    "5a": (832, 256, 160, 320, 32, 128, 128),
    "5b": (832, 384, 192, 384, 48, 128, 128),
}


class GoogLeNetOutputs(NamedTuple):
    """What a GoogLeNet with auxiliary classifiers returns in training mode (torchvision's order)."""

    logits: torch.Tensor
    aux_logits2: torch.Tensor
    aux_logits1: torch.Tensor


class GoogLeNet(Backbone):
    """GoogLeNet with optional auxiliary classifiers.

    Args:
        num_classes: classifier outputs (0: no classifier, `forward` returns pooled features).
        in_chans: input image channels.
        aux_logits: build the two auxiliary classifiers. In training mode `forward` then returns
            `GoogLeNetOutputs(logits, aux_logits2, aux_logits1)`; in evaluation mode, logits only.
        paper_5x5: use the paper's 5x5 kernel in the third branch instead of torchvision's 3x3.
        dropout: dropout before the classifier.
        dropout_aux: dropout inside the auxiliary classifiers.

    Stages (stride 2, 4, 8, 16, 32): stem conv (64), conv2-3 (192), inception 3 (480), inception 4 (832),
    inception 5 (1024).
    """

    def __init__(self, num_classes: int = 1000, in_chans: int = 3, aux_logits: bool = False,
                 paper_5x5: bool = False, dropout: float = 0.2, dropout_aux: float = 0.7):
        super().__init__()
        self.num_classes = num_classes
        self.aux_logits = aux_logits
        k5 = 5 if paper_5x5 else 3
        # ceil_mode pools: 224 -> 112 -> 56 -> 28 -> 14 -> 7 as in the paper (and exact halving of even sizes)
        self.conv1 = BasicConv2d(in_chans, 64, 7, stride=2, padding=3)
        self.maxpool1 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.conv2 = BasicConv2d(64, 64, 1)
        self.conv3 = BasicConv2d(64, 192, 3, padding=1)
        self.maxpool2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        for name, cfg in _INCEPTION_CFG.items():
            setattr(self, f"inception{name}", InceptionModule(*cfg, branch3_kernel_size=k5))
            if name == "3b":
                self.maxpool3 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
            elif name == "4e":
                self.maxpool4 = nn.MaxPool2d(2, stride=2, ceil_mode=True)
        self.aux1 = InceptionAux(512, num_classes, dropout_aux) if aux_logits else None
        self.aux2 = InceptionAux(528, num_classes, dropout_aux) if aux_logits else None
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.num_features = 1024
        self.stage_channels = [64, 192, 480, 832, 1024]
        self.fc = classifier_layer(1024, num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        # torchvision's initialisation, so a model trained here behaves like one trained there
        for m in self.modules():
            if isinstance(m, nn.Conv2d | nn.Linear):
                nn.init.trunc_normal_(m.weight, mean=0.0, std=0.01, a=-2, b=2)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def remove_aux_heads(self) -> None:
        """Drop the auxiliary classifiers (they only help training): `forward` then always returns logits."""
        self.aux_logits = False
        self.aux1 = self.aux2 = None

    def _stages(self, x: torch.Tensor, aux: list[torch.Tensor] | None = None) -> list[torch.Tensor]:
        """The five stage outputs; appends the auxiliary logits (aux1, aux2) to `aux` when it is given."""
        s1 = self.conv1(x)  # (B, 64, H/2, W/2)
        s2 = self.conv3(self.conv2(self.maxpool1(s1)))  # (B, 192, H/4, W/4)
        s3 = self.inception3b(self.inception3a(self.maxpool2(s2)))  # (B, 480, H/8, W/8)
        y = self.inception4a(self.maxpool3(s3))
        if aux is not None:
            aux.append(self.aux1(y))
        y = self.inception4d(self.inception4c(self.inception4b(y)))
        if aux is not None:
            aux.append(self.aux2(y))
        s4 = self.inception4e(y)  # (B, 832, H/16, W/16)
        s5 = self.inception5b(self.inception5a(self.maxpool4(s4)))  # (B, 1024, H/32, W/32)
        return [s1, s2, s3, s4, s5]

    def forward_stages(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self._stages(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.dropout(torch.flatten(self.avgpool(x), 1))  # (B, 1024)
        return x if pre_logits else self.fc(x)

    def get_classifier(self) -> nn.Module:
        return self.fc

    def reset_classifier(self, num_classes: int) -> None:
        """New main classifier (and auxiliary last layers, so all heads predict the same classes)."""
        self.num_classes = num_classes
        self.fc = classifier_layer(self.num_features, num_classes)
        for head in (self.aux1, self.aux2):
            if head is not None:
                head.fc2 = classifier_layer(1024, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor | GoogLeNetOutputs:
        if self.training and self.aux_logits:
            aux: list[torch.Tensor] = []
            logits = self.forward_head(self._stages(x, aux)[-1])
            return GoogLeNetOutputs(logits, aux[1], aux[0])
        return self.forward_head(self.forward_features(x))


def _googlenet(weights: str | None, *, aux_logits: bool, **kwargs) -> GoogLeNet:
    if weights is None:
        return GoogLeNet(aux_logits=aux_logits, **kwargs)
    from cnnkit.models.weights import load_weights, read_weights  # lazy: building a model must not need the loader

    # torchvision's checkpoint holds the auxiliary heads; like torchvision, load them and drop them afterwards
    # when they were not asked for, so that the file loads without "unexpected tensor" warnings
    file_has_aux = any(k.startswith("aux1.") or ".aux1." in k for k in read_weights(weights).state)
    model = GoogLeNet(aux_logits=aux_logits or file_has_aux, **kwargs)
    load_weights(model, weights)
    if not aux_logits:
        model.remove_aux_heads()
    return model


@register_model
def googlenet(*, num_classes: int = 1000, in_chans: int = 3, weights: str | None = None, aux_logits: bool = False,
              paper_5x5: bool = False, **kwargs) -> GoogLeNet:
    """GoogLeNet / Inception v1: 6,624,904 parameters (13,004,888 with `aux_logits=True`), 1.50 GMACs at 224.

    Args:
        num_classes: classifier outputs.
        in_chans: input image channels.
        weights: path of a weights file (cnnkit model file or torchvision state dict) to load.
        aux_logits: add the two auxiliary classifiers (training returns (logits, aux2, aux1)).
        paper_5x5: the paper's 5x5 kernels instead of torchvision's 3x3 ones.
        **kwargs: `dropout`, `dropout_aux`.
    """
    return _googlenet(weights, num_classes=num_classes, in_chans=in_chans, aux_logits=aux_logits,
                      paper_5x5=paper_5x5, **kwargs)

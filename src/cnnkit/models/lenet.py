"""LeNet-5 (LeCun et al. 1998), the network that read the digits on cheques.

32x32x1 input, valid 5x5 convolutions, 2x2 subsampling, tanh:

    C1 conv 6@5x5 -> 28x28x6, S2 avg pool 2 -> 14x14x6, C3 conv 16@5x5 -> 10x10x16, S4 avg pool 2 -> 5x5x16,
    C5 conv 120@5x5 -> 1x1x120 (a fully connected layer from the 400 values), F6 84, output 10.

61,706 parameters. C3 connects every S2 map to every C3 map (the paper's sparse connection table is left out,
as in the course), S2/S4 are plain average pools (the paper's trainable coefficient and bias per map are left
out) and the output is a linear layer (the paper's Gaussian RBF units are left out): 61,706 is the count for
exactly this network. `lenet5_modern` swaps tanh for ReLU and average for max pooling; same parameters.

Parameter names follow the paper's layer names: `c1`, `c3`, `c5`, `f6`, `output`.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from cnnkit.errors import InputError
from cnnkit.layers.activations import LayerType, create_act
from cnnkit.models.backbone import Backbone, classifier_layer, with_weights
from cnnkit.models.registry import register_model


class LeNet5(Backbone):
    """LeNet-5.

    Args:
        num_classes: outputs of the last layer; 0 leaves none (`forward` returns F6's 84 values).
        in_chans: input channels (1 for digits).
        act_layer: activation class, factory or name (tanh in the paper).
        pool: "avg" (the paper's subsampling) or "max".
        dropout: dropout probability before the output layer.

    Stages: S2 (6 maps, 14x14), S4 (16 maps, 5x5), C5 (120 maps, 1x1). `num_features` is C5's 120 channels,
    `head_hidden_size` F6's 84 units, which `forward_head(..., pre_logits=True)` returns (timm's names).
    """

    default_input_size = (1, 32, 32)

    def __init__(
        self,
        *,
        num_classes: int = 10,
        in_chans: int = 1,
        act_layer: LayerType = nn.Tanh,
        pool: str = "avg",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if pool not in ("avg", "max"):
            raise InputError(f"pool must be 'avg' or 'max', got {pool!r}")
        pool_layer = nn.AvgPool2d if pool == "avg" else nn.MaxPool2d
        self.default_input_size = (in_chans, 32, 32)
        self.c1 = nn.Conv2d(in_chans, 6, 5)
        self.s2 = pool_layer(2)
        self.c3 = nn.Conv2d(6, 16, 5)
        self.s4 = pool_layer(2)
        self.c5 = nn.Conv2d(16, 120, 5)
        self.f6 = nn.Linear(120, 84)
        self.act = create_act(act_layer, inplace=False)
        self.dropout = nn.Dropout(dropout)
        self.num_classes = num_classes
        self.output = classifier_layer(84, num_classes)
        self.stage_channels = [6, 16, 120]
        self.num_features = 120
        self.head_hidden_size = 84

    def forward_stages(self, x: torch.Tensor) -> list[torch.Tensor]:
        """[S2 (B, 6, 14, 14), S4 (B, 16, 5, 5), C5 (B, 120, 1, 1)] from (B, in_chans, 32, 32)."""
        if tuple(x.shape[-2:]) != (32, 32):
            raise InputError(
                f"LeNet-5 takes 32x32 images, got {int(x.shape[-2])}x{int(x.shape[-1])}; pad 28x28 digits by 2 pixels "
                "on each side"
            )
        s2 = self.s2(self.act(self.c1(x)))
        s4 = self.s4(self.act(self.c3(s2)))
        c5 = self.act(self.c5(s4))
        return [s2, s4, c5]

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """(B, 120, 1, 1) -> F6 (B, 84) -> output (B, num_classes)."""
        x = self.act(self.f6(torch.flatten(x, 1)))
        x = self.dropout(x)
        return x if pre_logits else self.output(x)

    def get_classifier(self) -> nn.Module:
        return self.output

    def reset_classifier(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.output = classifier_layer(self.head_hidden_size, num_classes)



@register_model
def lenet5(*, num_classes: int = 10, in_chans: int = 1, weights=None, **kwargs) -> LeNet5:
    """LeNet-5 as published: tanh, average pooling, 61,706 parameters; 32x32 inputs."""
    return with_weights(LeNet5(num_classes=num_classes, in_chans=in_chans, **kwargs), weights)


@register_model
def lenet5_modern(*, num_classes: int = 10, in_chans: int = 1, weights=None, **kwargs) -> LeNet5:
    """LeNet-5 with ReLU and max pooling (trains faster); same 61,706 parameters."""
    opts = {"act_layer": nn.ReLU, "pool": "max", **kwargs}
    return with_weights(LeNet5(num_classes=num_classes, in_chans=in_chans, **opts), weights)

"""AlexNet (Krizhevsky, Sutskever and Hinton 2012), the network that started the deep-learning era of vision.

- `alexnet`: torchvision's single-GPU layout (64-192-384-256-256 filters, "One weird trick", 2014), with
  its parameter names and shapes (`features.0`, ..., `classifier.6`): 61,100,840 parameters.
- `alexnet_paper`: the 2012 paper's network, 96-256-384-384-256 filters on 227x227 inputs, local response
  normalisation after the first two convolutions, and conv2/4/5 split in two groups as the paper's two GPUs
  were (`grouped=False` joins them): 60,965,224 parameters (62,378,344 ungrouped).

Both pool adaptively to 6x6 before the classifier, so they accept inputs from about 64x64 up.
"""

from __future__ import annotations

import torch.nn as nn

from cnnkit.models.backbone import MLPHeadBackbone, classifier_layer, with_weights
from cnnkit.models.registry import register_model


class AlexNet(MLPHeadBackbone):
    """AlexNet: five convolutions with three max pools, adaptive 6x6 average pool, three fully connected layers.

    Args:
        num_classes: classifier outputs; 0 leaves no last layer (`forward` returns the 4096 fc7 features).
        in_chans: input image channels.
        dropout: dropout probability before fc6 and fc7 (0.5 in the paper).
        paper: the 2012 paper's 96-256-384-384-256 network with local response normalisation.
        grouped: with `paper`, split conv2, conv4 and conv5 into two groups as the paper's two GPUs did.

    Stages end at each max pool (64, 192, 256 channels; 96, 256, 256 for the paper's). `num_features` is the
    256 channels of the last feature map, `head_hidden_size` the 4096 units that `forward_head(...,
    pre_logits=True)` returns and the last fully connected layer takes (timm's names).
    """

    def __init__(
        self,
        *,
        num_classes: int = 1000,
        in_chans: int = 3,
        dropout: float = 0.5,
        paper: bool = False,
        grouped: bool = True,
    ) -> None:
        super().__init__()
        if paper:
            g = 2 if grouped else 1
            # LRN with the paper's constants k=2, n=5, alpha=1e-4, beta=0.75
            layers = [
                nn.Conv2d(in_chans, 96, 11, 4, 0), nn.ReLU(inplace=True), nn.LocalResponseNorm(5, 1e-4, 0.75, 2.0),
                nn.MaxPool2d(3, 2),
                nn.Conv2d(96, 256, 5, 1, 2, groups=g), nn.ReLU(inplace=True), nn.LocalResponseNorm(5, 1e-4, 0.75, 2.0),
                nn.MaxPool2d(3, 2),
                nn.Conv2d(256, 384, 3, 1, 1), nn.ReLU(inplace=True),
                nn.Conv2d(384, 384, 3, 1, 1, groups=g), nn.ReLU(inplace=True),
                nn.Conv2d(384, 256, 3, 1, 1, groups=g), nn.ReLU(inplace=True),
                nn.MaxPool2d(3, 2),
            ]
            self.stage_channels = [96, 256, 256]
            self.default_input_size = (in_chans, 227, 227)  # 224 in the paper's text, 227 in its arithmetic
        else:
            layers = [
                nn.Conv2d(in_chans, 64, 11, 4, 2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
                nn.Conv2d(64, 192, 5, 1, 2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
                nn.Conv2d(192, 384, 3, 1, 1), nn.ReLU(inplace=True),
                nn.Conv2d(384, 256, 3, 1, 1), nn.ReLU(inplace=True),
                nn.Conv2d(256, 256, 3, 1, 1), nn.ReLU(inplace=True),
                nn.MaxPool2d(3, 2),
            ]
            self.stage_channels = [64, 192, 256]
            self.default_input_size = (in_chans, 224, 224)
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.num_features = 256
        self.head_hidden_size = 4096
        self.num_classes = num_classes
        self.classifier = nn.Sequential(
            nn.Dropout(dropout),
            nn.Linear(256 * 6 * 6, 4096),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(4096, 4096),
            nn.ReLU(inplace=True),
            classifier_layer(4096, num_classes),
        )


@register_model
def alexnet(*, num_classes: int = 1000, in_chans: int = 3, weights=None, **kwargs) -> AlexNet:
    """AlexNet in torchvision's layout: 61,100,840 parameters; loads torchvision's alexnet checkpoints."""
    return with_weights(AlexNet(num_classes=num_classes, in_chans=in_chans, **kwargs), weights)


@register_model
def alexnet_paper(*, num_classes: int = 1000, in_chans: int = 3, weights=None, **kwargs) -> AlexNet:
    """AlexNet as in the 2012 paper: 96-256-384-384-256, LRN, grouped convolutions, 60,965,224 parameters."""
    return with_weights(AlexNet(num_classes=num_classes, in_chans=in_chans, paper=True, **kwargs), weights)

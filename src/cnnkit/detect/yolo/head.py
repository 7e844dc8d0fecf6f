"""The YOLO v2 head: a few convolutions on the backbone's deepest feature map (plus the "passthrough" of the
stage before it, as YOLOv2 does), then a 1x1 convolution giving every cell B x (5 + C) numbers."""

from __future__ import annotations

import functools

import torch
import torch.nn as nn

from cnnkit.layers.conv_bn_act import ConvBnAct

LeakyReLU01 = functools.partial(nn.LeakyReLU, 0.1)  # YOLO's activation (slope 0.1, not torch's 0.01)


def space_to_depth(x: torch.Tensor, block: int = 2) -> torch.Tensor:
    """YOLOv2's "reorg": every block x block patch becomes block^2 channels.

    Args:
        x: Tensor (B, C, H, W) with H and W multiples of `block`.

    Returns:
        Tensor (B, C * block^2, H / block, W / block); channel `c * block^2 + i * block + j` holds
        `x[:, c, i::block, j::block]` (the layout of `nn.PixelUnshuffle`).
    """
    return nn.functional.pixel_unshuffle(x, block)


class YoloHead(nn.Module):
    """Predicts `(t_o, t_x, t_y, t_h, t_w, class logits)` for B anchors in every cell of the deepest feature map.

    Args:
        in_channels: channels of the deepest feature map (stride s).
        num_anchors: B.
        num_classes: C.
        hidden: channels of the 3x3 convolutions.
        num_convs: 3x3 convolutions on the deep features before the fusion with the passthrough (YOLOv2: 2).
        passthrough_channels: channels of the feature map at stride s / 2 (0: no passthrough). It is reduced by
            a 1x1 convolution to `passthrough_reduce` channels, reorganised to stride s (`space_to_depth`) and
            concatenated with the deep features, so fine detail reaches the predictions (YOLOv2's passthrough).
        passthrough_reduce: channels the passthrough is reduced to before the reorganisation (YOLOv2: 64).
        act_layer: activation of the convolutions.

    Shapes:
        deep (N, in_channels, S_h, S_w), fine (N, passthrough_channels, 2 S_h, 2 S_w) -> (N, S_h, S_w, B, 5 + C).
    """

    def __init__(self, in_channels: int, num_anchors: int, num_classes: int, *, hidden: int = 256, num_convs: int = 2,
                 passthrough_channels: int = 0, passthrough_reduce: int = 32, act_layer=LeakyReLU01) -> None:
        super().__init__()
        self.num_anchors = num_anchors
        self.num_classes = num_classes
        convs, c = [], in_channels
        for _ in range(num_convs):
            convs.append(ConvBnAct(c, hidden, 3, act_layer=act_layer))
            c = hidden
        self.convs = nn.Sequential(*convs)
        self.passthrough = None
        if passthrough_channels:
            self.passthrough = ConvBnAct(passthrough_channels, passthrough_reduce, 1, act_layer=act_layer)
            c += 4 * passthrough_reduce
        self.fuse = ConvBnAct(c, hidden, 3, act_layer=act_layer)
        self.pred = nn.Conv2d(hidden, num_anchors * (5 + num_classes), 1)
        self._init_pred()

    def _init_pred(self) -> None:
        # start with p_c ~ 0.01 everywhere (most anchors hold nothing) and the boxes equal to the anchors, so the
        # first steps are not spent unlearning a random guess (the focal-loss paper's prior, used by later YOLOs)
        nn.init.normal_(self.pred.weight, std=0.01)
        bias = self.pred.bias.detach().view(self.num_anchors, 5 + self.num_classes)
        bias.zero_()
        bias[:, 0] = -4.6  # sigmoid(-4.6) = 0.01

    def forward(self, deep: torch.Tensor, fine: torch.Tensor | None = None) -> torch.Tensor:
        x = self.convs(deep)
        if self.passthrough is not None:
            if fine is None:
                raise ValueError("this head has a passthrough: give it the stage before the deepest one")
            x = torch.cat([space_to_depth(self.passthrough(fine), 2), x], dim=1)
        x = self.pred(self.fuse(x))  # (N, B * (5 + C), S_h, S_w)
        n, _, h, w = x.shape
        return x.view(n, self.num_anchors, 5 + self.num_classes, h, w).permute(0, 3, 4, 1, 2)  # (N, S_h, S_w, B, 5+C)

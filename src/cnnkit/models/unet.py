"""U-Net (Ronneberger, Fischer and Brox 2015) and encoder-decoders for semantic segmentation.

A contracting path (two 3x3 convolutions per level, 2x2 max pool, channels doubling) shrinks the image into
features; an expanding path grows it back with transposed convolutions, each level concatenating the encoder's
feature map of the same size (the skip connection carries the fine detail across); a 1x1 convolution gives a
score per class and pixel: (B, in_chans, H, W) -> (B, num_classes, H', W'), H' == H with "same" padding.

Registered:
- `unet`: the paper's network (64 base filters, depth 4, 2x2 up-convolutions, 1 input channel, 2 classes,
  `padding="valid"` as the paper: the skip is cropped to fit, 572x572 in -> 388x388 out; or `padding="same"`).
  31,030,658 parameters.
- `unet_course`: the curriculum's Keras U-Net, mirrored layer for layer (input 96x128x3, n_filters=32, 23 classes,
  "same" padding, 3x3 stride-2 transposed convolutions cropped as Keras' "same" does, dropout 0.3 in the two deepest
  blocks, one more 3x3 convolution before the 1x1 output, he_normal/glorot_uniform initialisation): 8,640,471
  parameters, the number its `model.summary()` prints.
- `unet_small` / `unet_small_noskip`: a CPU-friendly U-Net (8 base filters, BatchNorm, same padding) and the very
  same network with the skip connections removed, to show what the skips add.
- `unet_<backbone>` (resnet18/34/50, vgg16, mobilenet_v2, efficientnet_b0): any zoo backbone as the encoder
  (its `forward_stages` / `out_channels`), a decoder with transposed-convolution or bilinear upsampling.
- `segnet_vgg16_noskip`: the encoder-decoder without skips of the course notes (VGG-16 encoder, transposed
  convolutions back up to the input size).

Every model here has `task = "segmentation"` and a `size_rule` (`SizeRule`): the input sizes it predicts exactly
and the border it loses, which whole-image and tiled prediction (`cnnkit.segment.tiling`) pad for.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from cnnkit.errors import InputError
from cnnkit.models.backbone import with_weights
from cnnkit.models.registry import create_model, register_model

PADDINGS = ("valid", "same")
UPSAMPLINGS = ("transposed", "bilinear")


@dataclass(frozen=True)
class SizeRule:
    """Which input sizes a network maps exactly, per spatial axis.

    Attributes:
        multiple: output sizes that work are `offset + k * multiple` (k >= 1); 2**depth for a U-Net.
        offset: see `multiple` (0 for "same" padding).
        margin: pixels the network loses on each side ("valid" convolutions): input = output + 2 * margin.
    """

    multiple: int
    offset: int = 0
    margin: int = 0

    def output_size_for(self, n: int) -> int:
        """Smallest valid output size >= n."""
        k = max(1, math.ceil((n - self.offset) / self.multiple))
        return self.offset + k * self.multiple

    def input_size(self, out: int) -> int:
        return out + 2 * self.margin


def pad_to_rule(x: torch.Tensor, rule: SizeRule, mode: str = "constant") -> tuple[torch.Tensor, tuple[int, int]]:
    """Pad (B, C, H, W) on the bottom/right to the next valid output size, and by `rule.margin` all round.

    Returns the padded tensor and the original (H, W), to crop the output back with `out[..., :H, :W]`.
    """
    h, w = x.shape[-2:]
    ph, pw = rule.output_size_for(h) - h, rule.output_size_for(w) - w
    m = rule.margin
    if ph or pw or m:
        if mode == "reflect" and max(ph, pw, m) >= min(h, w):
            mode = "replicate"  # reflection needs the pad to be smaller than the image
        x = F.pad(x, (m, pw + m, m, ph + m), mode=mode)
    return x, (h, w)


def center_crop(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """The central (h, w) window of (B, C, H, W): how the paper fits a skip to the smaller up-sampled map."""
    h, w = size
    top, left = (x.shape[-2] - h) // 2, (x.shape[-1] - w) // 2
    return x[..., top : top + h, left : left + w]


class DoubleConv(nn.Sequential):
    """Two 3x3 convolutions, each followed by an optional norm and ReLU; optional dropout after them.

    Shapes: (B, in_ch, H, W) -> (B, out_ch, H, W) with padding 1, (B, out_ch, H - 4, W - 4) with padding 0.
    """

    def __init__(self, in_ch: int, out_ch: int, *, padding: int = 1, norm_layer: type[nn.Module] | None = None,
                 dropout: float = 0.0) -> None:
        layers: list[nn.Module] = []
        for c_in in (in_ch, out_ch):
            layers.append(nn.Conv2d(c_in, out_ch, 3, padding=padding, bias=norm_layer is None))
            if norm_layer is not None:
                layers.append(norm_layer(out_ch))
            layers.append(nn.ReLU(inplace=True))
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        super().__init__(*layers)


class UpConv(nn.Module):
    """Up-sampling by `scale`: a transposed convolution (kernel `kernel_size`, stride `scale`) or bilinear.

    A transposed convolution whose kernel is larger than its stride makes (n - 1) * s + k pixels; with `crop=True`
    it keeps n * s of them as Keras' `padding="same"` does (the extra k - s split top/left (k - s) // 2, the rest
    bottom/right; for 3x3 stride 2 that is the last row and column), so Keras weights compute the same here.
    Bilinear up-sampling has no weights; `in_ch` must then equal `out_ch` unless a 1x1 convolution follows, which
    this class adds.

    Shapes: (B, in_ch, h, w) -> (B, out_ch, scale * h, scale * w).
    """

    def __init__(self, in_ch: int, out_ch: int, *, scale: int = 2, kernel_size: int | None = None,
                 mode: str = "transposed") -> None:
        super().__init__()
        if mode not in UPSAMPLINGS:
            raise InputError(f"unknown upsampling {mode!r}; choose one of {', '.join(UPSAMPLINGS)}")
        self.scale, self.mode = scale, mode
        k = scale if kernel_size is None else kernel_size
        if mode == "transposed":
            if k < scale:
                raise InputError(f"a transposed convolution needs kernel_size >= stride, got {k} < {scale}")
            self.up = nn.ConvTranspose2d(in_ch, out_ch, k, stride=scale)
            self.crop_before = (k - scale) // 2
        else:
            self.up = nn.Identity() if in_ch == out_ch else nn.Conv2d(in_ch, out_ch, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2] * self.scale, x.shape[-1] * self.scale
        if self.mode == "bilinear":
            return self.up(F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False))
        x = self.up(x)  # (B, out_ch, (h - 1) * s + k, ...)
        c = self.crop_before
        return x[..., c : c + h, c : c + w]


class UNet(nn.Module):
    """A U-Net of plain convolution blocks.

    Args:
        num_classes: output channels (scores per class and pixel).
        in_chans: input image channels.
        base_width: channels of the first level; each level down doubles them.
        depth: number of 2x2 max pools (levels below the first).
        padding: "valid" (no padding, outputs shrink, skips are centre-cropped: the paper) or "same".
        up_kernel: kernel of the transposed convolutions (2 in the paper, 3 in the course; stride is 2).
        upsample: "transposed" or "bilinear" (then a 1x1 convolution halves the channels).
        norm_layer: normalisation after every 3x3 convolution (e.g. nn.BatchNorm2d), None for none.
        dropout: dropout probability at the end of the `dropout_levels` deepest encoder blocks.
        dropout_levels: how many of the deepest encoder blocks end with dropout.
        final_conv: one more 3x3 convolution + ReLU before the 1x1 output layer (the course's `conv9`).
        skips: concatenate the encoder's feature maps into the decoder; False gives the same encoder-decoder
            without skip connections (the decoder's first convolutions then take only the up-sampled channels).
        init: "he" (normal, std sqrt(2 / fan_in) for every convolution: the paper) or "keras" (the course's
            he_normal for the 3x3 convolutions, glorot_uniform for the transposed and 1x1 ones, as in Keras).

    Inputs whose size is not a valid one (`size_rule`) are padded with zeros on the bottom/right and the output is
    cropped back, so with "same" padding any (H, W) gives an (H, W) output.
    """

    task = "segmentation"

    def __init__(self, *, num_classes: int = 2, in_chans: int = 1, base_width: int = 64, depth: int = 4,
                 padding: str = "valid", up_kernel: int = 2, upsample: str = "transposed",
                 norm_layer: type[nn.Module] | None = None, dropout: float = 0.0, dropout_levels: int = 0,
                 final_conv: bool = False, skips: bool = True, init: str = "he",
                 default_input_size: tuple[int, int, int] | None = None) -> None:
        super().__init__()
        if padding not in PADDINGS:
            raise InputError(f"unknown padding {padding!r}; choose one of {', '.join(PADDINGS)}")
        if num_classes < 1 or in_chans < 1 or base_width < 1 or depth < 1:
            raise InputError(f"U-Net needs num_classes, in_chans, base_width, depth >= 1, got {num_classes}, "
                             f"{in_chans}, {base_width}, {depth}")
        if padding == "valid" and upsample == "transposed" and up_kernel != 2:
            raise InputError("valid padding goes with 2x2 up-convolutions (as the paper); use padding='same'")
        self.num_classes, self.in_chans, self.depth = num_classes, in_chans, depth
        self.padding, self.skips = padding, skips
        pad = 1 if padding == "same" else 0
        widths = [base_width * 2**i for i in range(depth + 1)]
        self.down = nn.ModuleList()
        c = in_chans
        for i, w in enumerate(widths):
            p = dropout if i >= len(widths) - dropout_levels else 0.0
            self.down.append(DoubleConv(c, w, padding=pad, norm_layer=norm_layer, dropout=p))
            c = w
        self.pool = nn.MaxPool2d(2)
        self.up = nn.ModuleList()
        self.dec = nn.ModuleList()
        for w in reversed(widths[:-1]):
            self.up.append(UpConv(c, w, kernel_size=up_kernel, mode=upsample))
            self.dec.append(DoubleConv(2 * w if skips else w, w, padding=pad, norm_layer=norm_layer))
            c = w
        self.final = nn.Sequential(nn.Conv2d(c, c, 3, padding=pad), nn.ReLU(inplace=True)) if final_conv else None
        self.head = nn.Conv2d(c, num_classes, 1)
        self.default_input_size = default_input_size or ((in_chans, 572, 572) if padding == "valid"
                                                         else (in_chans, 128, 128))
        self.size_rule = self._size_rule(final_conv)
        self._init_weights(init)

    def _size_rule(self, final_conv: bool) -> SizeRule:
        multiple = 2**self.depth
        if self.padding == "same":
            return SizeRule(multiple)
        for n in range(1, 100 * multiple):  # the smallest input the valid network takes, and what it gives
            out = self._valid_output_size(n, final_conv)
            if out is not None:
                return SizeRule(multiple, offset=out % multiple, margin=(n - out) // 2)
        raise AssertionError("no valid input size")  # unreachable: n = 2**depth * k + const always exists

    def _valid_output_size(self, n: int, final_conv: bool) -> int | None:
        for _ in range(self.depth):
            n -= 4  # two unpadded 3x3 convolutions
            if n <= 0 or n % 2:
                return None  # the 2x2 max pool needs an even size
            n //= 2
        n -= 4
        for _ in range(self.depth):
            n = 2 * n - 4
        n -= 2 if final_conv else 0
        return n if n > 0 else None

    def _init_weights(self, init: str) -> None:
        if init not in ("he", "keras"):
            raise InputError(f"unknown init {init!r}; choose 'he' or 'keras'")
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                if init == "keras" and isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3):
                    _keras_he_normal_(m.weight)
                elif init == "keras":
                    nn.init.xavier_uniform_(m.weight)  # Keras' glorot_uniform (the fan sum is layout-independent)
                else:
                    nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def check_input_size(self, h: int, w: int) -> None:
        """Raise a clear error for an input a "valid" U-Net cannot map (it needs an even size at every pool)."""
        if self.padding == "valid":
            for n in (h, w):
                out = self._valid_output_size(n, self.final is not None)
                if out is None:
                    rule = self.size_rule
                    good = rule.input_size(rule.output_size_for(max(1, n - 2 * rule.margin)))
                    raise InputError(f"a valid-padding U-Net of depth {self.depth} cannot take size {n}; use "
                                     f"{good} (sizes {self.size_rule.margin * 2 + self.size_rule.offset} + "
                                     f"{self.size_rule.multiple}k), or padding='same'")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, in_chans, H, W) -> (B, num_classes, H', W'): H' == H ("same"), H - 2 * margin ("valid")."""
        h, w = x.shape[-2:]
        if self.padding == "same":
            x, _ = pad_to_rule(x, self.size_rule)
        else:
            self.check_input_size(h, w)
        feats = []
        for i, block in enumerate(self.down):
            x = block(x)
            if i < self.depth:
                feats.append(x)
                x = self.pool(x)
        for up, dec, skip in zip(self.up, self.dec, reversed(feats), strict=True):
            x = up(x)
            if self.skips:
                x = torch.cat([x, center_crop(skip, x.shape[-2:])], dim=1)  # Keras' order: [up, contractive]
            x = dec(x)
        if self.final is not None:
            x = self.final(x)
        x = self.head(x)
        return x[..., :h, :w] if self.padding == "same" else x


def _keras_he_normal_(w: torch.Tensor) -> None:
    # Keras' he_normal: a normal truncated at two standard deviations, rescaled so the kept values have
    # variance 2 / fan_in (the 0.8796 is the std of a unit normal truncated at +-2).
    fan_in = w.shape[1] * w.shape[2] * w.shape[3]
    std = math.sqrt(2.0 / fan_in) / 0.87962566103423978
    nn.init.trunc_normal_(w, 0.0, std, -2 * std, 2 * std)


class BackboneUNet(nn.Module):
    """A U-Net whose encoder is a zoo backbone: the decoder goes from its deepest stage back up, each block
    up-sampling, concatenating the next shallower stage (`skips=True`) and applying two 3x3 conv-norm-ReLU, then a
    last block up to the input size where the shallowest stage is smaller than the input, and a 1x1 convolution.

    The backbone's head (classifier, pooling, auxiliary heads: the children `forward_stages` never calls) is
    dropped, so `unet_vgg16` does not carry VGG's 120M fully connected weights. The state-dict keys of the
    encoder are the backbone's own under `encoder.`, so its torchvision checkpoint loads into it.

    Args:
        encoder: a Backbone (anything with `forward_stages` and `out_channels`).
        num_classes: output channels.
        decoder_channels: channels of the decoder blocks, deepest first (extended by halving when the encoder
            has more stages).
        upsample: "transposed" (2x2 stride-2 transposed convolutions) or "bilinear" (then a 1x1 convolution).
        skips: False drops the skip connections (an encoder-decoder such as `segnet_vgg16_noskip`).
        norm_layer: normalisation in the decoder blocks.
        probe_size: side of the blank image run once through the encoder to learn its stages' strides.
    """

    task = "segmentation"

    def __init__(self, encoder: nn.Module, *, num_classes: int,
                 decoder_channels: Sequence[int] = (256, 128, 64, 32, 16), upsample: str = "transposed",
                 skips: bool = True, norm_layer: type[nn.Module] | None = nn.BatchNorm2d, probe_size: int = 64) -> None:
        super().__init__()
        if upsample not in UPSAMPLINGS:
            raise InputError(f"unknown upsampling {upsample!r}; choose one of {', '.join(UPSAMPLINGS)}")
        self.encoder = encoder
        self.num_classes, self.skips = num_classes, skips
        in_chans = getattr(encoder, "default_input_size", (3,))[0]
        self.in_chans = in_chans
        strides = _probe_and_prune(encoder, in_chans, probe_size)
        chans = list(encoder.out_channels)
        n = len(chans)
        needed = n - 1 + (strides[0] > 1)
        dec = list(decoder_channels)[:needed]
        while len(dec) < needed:
            dec.append(max(dec[-1] // 2, 8) if dec else 16)
        self.blocks = nn.ModuleList()
        self.ups = nn.ModuleList()
        c = chans[-1]
        targets = list(range(n - 2, -1, -1)) + ([-1] if strides[0] > 1 else [])
        for out_c, t in zip(dec, targets, strict=True):
            fine = strides[t] if t >= 0 else 1
            scale = max(1, round(strides[t + 1 if t >= 0 else 0] / fine))
            self.ups.append(UpConv(c, out_c, scale=scale, mode=upsample) if scale > 1 else nn.Conv2d(c, out_c, 1))
            skip_c = chans[t] if (skips and t >= 0) else 0
            self.blocks.append(DoubleConv(out_c + skip_c, out_c, norm_layer=norm_layer))
            c = out_c
        self.targets = targets
        self.head = nn.Conv2d(c, num_classes, 1)
        self.size_rule = SizeRule(max(strides))
        self.default_input_size = (in_chans, 128, 128)
        for m in [*self.ups.modules(), *self.blocks.modules(), self.head]:
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, in_chans, H, W) -> (B, num_classes, H, W)."""
        h, w = x.shape[-2:]
        x, _ = pad_to_rule(x, self.size_rule)
        size = x.shape[-2:]
        stages = self.encoder.forward_stages(x)
        y = stages[-1]
        for up, block, t in zip(self.ups, self.blocks, self.targets, strict=True):
            y = up(y)
            ref = stages[t].shape[-2:] if t >= 0 else size
            if y.shape[-2:] != ref:  # a backbone whose strides are not exact powers of two
                y = F.interpolate(y, size=ref, mode="bilinear", align_corners=False)
            if self.skips and t >= 0:
                y = torch.cat([y, stages[t]], dim=1)
            y = block(y)
        y = self.head(y)
        if y.shape[-2:] != size:
            y = F.interpolate(y, size=size, mode="bilinear", align_corners=False)
        return y[..., :h, :w]


def _probe_and_prune(encoder: nn.Module, in_chans: int, size: int) -> list[int]:
    """Run a blank image through `forward_stages`; replace the top-level children it never called (the head) by
    nn.Identity, and return each stage's stride."""
    called: set[str] = set()
    hooks = []
    for name, child in encoder.named_children():
        for m in child.modules():
            hooks.append(m.register_forward_hook(lambda *_, name=name: called.add(name)))
    was_training = encoder.training
    param = next(encoder.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    try:
        encoder.eval()
        with torch.no_grad():
            stages = encoder.forward_stages(torch.zeros(1, in_chans, size, size, device=device))
    finally:
        for hk in hooks:
            hk.remove()
        encoder.train(was_training)
    for name, _ in list(encoder.named_children()):
        if name not in called:
            setattr(encoder, name, nn.Identity())
    return [2 ** max(0, round(math.log2(size / s.shape[-1]))) for s in stages]


# --- registered builders ---------------------------------------------------------------------------------------


@register_model
def unet(*, num_classes: int = 2, in_chans: int = 1, padding: str = "valid", base_width: int = 64, depth: int = 4,
         weights=None, **kwargs) -> UNet:
    """The paper's U-Net: 64 base filters, depth 4, 2x2 up-convolutions, valid padding (572x572 -> 388x388).

    31,030,658 parameters with 1 input channel and 2 classes (the paper's configuration).
    """
    model = UNet(num_classes=num_classes, in_chans=in_chans, base_width=base_width, depth=depth, padding=padding,
                 up_kernel=2, init="he", **kwargs)
    return with_weights(model, weights)


@register_model
def unet_course(*, num_classes: int = 23, in_chans: int = 3, n_filters: int = 32, dropout: float = 0.3,
                weights=None, **kwargs) -> UNet:
    """The curriculum's Keras U-Net (`unet_model(input_size=(96, 128, 3), n_filters=32, n_classes=23)`): same
    padding, 3x3 stride-2 transposed convolutions, dropout 0.3 in the two deepest blocks, a 3x3 `conv9` before the
    1x1 output. 8,640,471 parameters, as its Keras summary."""
    model = UNet(num_classes=num_classes, in_chans=in_chans, base_width=n_filters, depth=4, padding="same",
                 up_kernel=3, dropout=dropout, dropout_levels=2, final_conv=True, init="keras",
                 default_input_size=(in_chans, 96, 128), **kwargs)
    return with_weights(model, weights)


@register_model
def unet_small(*, num_classes: int = 5, in_chans: int = 3, base_width: int = 8, depth: int = 4, weights=None,
               **kwargs) -> UNet:
    """A CPU-friendly U-Net: 8 base filters, depth 4, BatchNorm, same padding, 2x2 up-convolutions
    (486,589 parameters for 3 input channels and 5 classes; base_width=16: 1,942,645)."""
    kwargs.setdefault("norm_layer", nn.BatchNorm2d)
    model = UNet(num_classes=num_classes, in_chans=in_chans, base_width=base_width, depth=depth, padding="same",
                 up_kernel=2, **kwargs)
    return with_weights(model, weights)


@register_model
def unet_small_noskip(*, num_classes: int = 5, in_chans: int = 3, base_width: int = 8, depth: int = 4,
                      weights=None, **kwargs) -> UNet:
    """`unet_small` without its skip connections: the same encoder and decoder, nothing carried across."""
    return unet_small(num_classes=num_classes, in_chans=in_chans, base_width=base_width, depth=depth,
                      weights=weights, skips=False, **kwargs)


def _backbone_unet(backbone: str, *, num_classes: int, in_chans: int, encoder_weights=None, weights=None,
                   skips: bool = True, upsample: str = "transposed",
                   decoder_channels: Sequence[int] = (256, 128, 64, 32, 16), **kwargs) -> BackboneUNet:
    encoder = create_model(backbone, num_classes=0, in_chans=in_chans, **kwargs)
    if encoder_weights is not None:
        from cnnkit.models.weights import load_weights

        load_weights(encoder, encoder_weights)
    model = BackboneUNet(encoder, num_classes=num_classes, decoder_channels=decoder_channels, upsample=upsample,
                         skips=skips)
    return with_weights(model, weights)


def unet_from_backbone(backbone: str, *, num_classes: int, in_chans: int = 3, **kwargs) -> BackboneUNet:
    """A U-Net over any registered backbone by name, e.g. `unet_from_backbone("resnet34", num_classes=5)`.

    Keyword arguments: `encoder_weights` (a file for the backbone), `weights` (a file for the whole U-Net),
    `skips`, `upsample` ("transposed"/"bilinear"), `decoder_channels`, and the backbone's own options.
    """
    return _backbone_unet(backbone, num_classes=num_classes, in_chans=in_chans, **kwargs)


def _register_backbone_unet(backbone: str) -> None:
    def builder(*, num_classes: int = 5, in_chans: int = 3, **kwargs) -> BackboneUNet:
        return _backbone_unet(backbone, num_classes=num_classes, in_chans=in_chans, **kwargs)

    builder.__name__ = builder.__qualname__ = f"unet_{backbone}"
    builder.__doc__ = (f"U-Net decoder over the {backbone} encoder (its stages as skips); `encoder_weights=FILE` "
                       f"loads the backbone's weights, `upsample='bilinear'` swaps the transposed convolutions.")
    register_model(builder)


for _name in ("resnet18", "resnet34", "resnet50", "vgg16", "mobilenet_v2", "efficientnet_b0"):
    _register_backbone_unet(_name)


@register_model
def segnet_vgg16_noskip(*, num_classes: int = 5, in_chans: int = 3, encoder_weights=None, weights=None,
                        **kwargs) -> BackboneUNet:
    """The encoder-decoder of the course notes: VGG-16's 13 convolutions and 5 pools down to 1/32, then five
    2x2 stride-2 transposed convolutions (each followed by two 3x3 conv-BN-ReLU) back to the input size, no skips."""
    return _backbone_unet("vgg16", num_classes=num_classes, in_chans=in_chans, encoder_weights=encoder_weights,
                          weights=weights, skips=False, **kwargs)

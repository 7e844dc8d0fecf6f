"""The course's lessons on what convolutions cost, computed from formulas and measured on real layers.

Three lessons, each a function that returns a small dataclass with the formula's numbers, and a builder of the
real `nn.Conv2d` layers it describes so the numbers can be checked against `cnnkit.summary.summary`:

- Why convolutions: a 5x5 convolution from 32x32x3 to 28x28x6 has 456 parameters; a fully-connected layer
  between the same sizes would have about 14 million (parameter sharing and sparse connections).
- The 1x1 bottleneck: 28x28x192 to 28x28x32 with a 5x5 convolution costs 120,422,400 multiplies directly and
  12,443,648 through a 16-channel 1x1 bottleneck, about ten times fewer.
- Depthwise-separable convolutions: depthwise (f x f per channel) then pointwise (1x1) costs
  1/n_c' + 1/f^2 of a normal convolution with n_c' output channels.

Multiplies are counted as multiply-adds (MACs): one per weight per output position, as in the course.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn as nn

from cnnkit.errors import InputError
from cnnkit.shapes import conv_output_size
from cnnkit.summary import fc_equivalent_params, summary


def conv_macs(in_shape: tuple[int, int, int], out_channels: int, f: int, *, padding: int = 0, stride: int = 1,
              groups: int = 1) -> int:
    """Multiply-adds of one convolution: (output positions) x (output channels) x (f x f x C_in / groups).

    Args:
        in_shape: (C, H, W) of the input.
        out_channels: number of filters.
        f: filter size.
        padding: zeros added on each side.
        stride: step of the filter.
        groups: 1 for a normal convolution, C for a depthwise one.
    """
    c, h, w = _check_shape(in_shape)
    if c % groups or out_channels % groups:
        raise InputError(f"groups={groups} must divide the {c} input and {out_channels} output channels")
    h2, w2 = conv_output_size(h, f, stride=stride, pad=padding), conv_output_size(w, f, stride=stride, pad=padding)
    return h2 * w2 * out_channels * f * f * (c // groups)


def conv_params(in_channels: int, out_channels: int, f: int, *, groups: int = 1, bias: bool = True) -> int:
    """Parameters of a convolution: f x f x (C_in / groups) weights per filter, plus one bias per filter."""
    return out_channels * f * f * (in_channels // groups) + (out_channels if bias else 0)


@dataclass
class ConvVsFC:
    """A convolution against a fully-connected layer between the same input and output sizes.

    Attributes:
        in_shape: (C, H, W) of the input.
        out_shape: (C', H', W') of the convolution's output.
        conv_params: weights and biases of the convolution.
        fc_params: weights and biases of the fully-connected layer.
        conv_inputs_per_output: values each output depends on (f x f x C: sparse connections).
        fc_inputs_per_output: values each output of the fully-connected layer depends on (all of them).
        uses_per_weight: output positions each convolution weight is used at (parameter sharing).
    """

    in_shape: tuple[int, int, int]
    out_shape: tuple[int, int, int]
    conv_params: int
    fc_params: int
    conv_inputs_per_output: int
    fc_inputs_per_output: int
    uses_per_weight: int

    @property
    def ratio(self) -> float:
        """How many times more parameters the fully-connected layer needs."""
        return self.fc_params / self.conv_params


def conv_vs_fully_connected(in_shape: tuple[int, int, int] = (3, 32, 32), out_channels: int = 6, f: int = 5, *,
                            padding: int = 0, stride: int = 1) -> ConvVsFC:
    """Why convolutions: the parameters of a convolution and of a fully-connected layer of the same sizes.

    The default is the course's example: 32x32x3 -> 28x28x6 with six 5x5 filters, 456 parameters against
    3,072 x 4,704 weights (+ 4,704 biases) = 14,455,392 for the fully-connected layer.
    """
    c, h, w = _check_shape(in_shape)
    out = (out_channels, conv_output_size(h, f, stride=stride, pad=padding),
           conv_output_size(w, f, stride=stride, pad=padding))
    n_in, n_out = c * h * w, out[0] * out[1] * out[2]
    return ConvVsFC(
        in_shape=(c, h, w), out_shape=out,
        conv_params=conv_params(c, out_channels, f), fc_params=fc_equivalent_params(n_in, n_out),
        conv_inputs_per_output=f * f * c, fc_inputs_per_output=n_in, uses_per_weight=out[1] * out[2],
    )


@dataclass
class BottleneckCost:
    """A f x f convolution done directly, or after a 1x1 convolution that shrinks the channels first.

    Attributes:
        in_shape: (C, H, W) of the input.
        out_channels: channels of the result.
        f: size of the big filter.
        bottleneck_channels: channels of the 1x1 "bottleneck" layer in between.
        direct_macs: multiplies of the f x f convolution applied to the input.
        reduce_macs: multiplies of the 1x1 convolution down to `bottleneck_channels`.
        expand_macs: multiplies of the f x f convolution from the bottleneck to `out_channels`.
    """

    in_shape: tuple[int, int, int]
    out_channels: int
    f: int
    bottleneck_channels: int
    direct_macs: int
    reduce_macs: int
    expand_macs: int

    @property
    def bottleneck_macs(self) -> int:
        """Multiplies of the two-layer version."""
        return self.reduce_macs + self.expand_macs

    @property
    def saving(self) -> float:
        """How many times fewer multiplies the bottleneck needs."""
        return self.direct_macs / self.bottleneck_macs


def bottleneck_cost(in_shape: tuple[int, int, int] = (192, 28, 28), out_channels: int = 32, f: int = 5,
                    bottleneck_channels: int = 16) -> BottleneckCost:
    """The 1x1 bottleneck lesson, from the formula ("same" padding keeps H x W).

    With the course's numbers (the default): 28x28x192 -> 28x28x32 with a 5x5 convolution costs
    28*28*32 * 5*5*192 = 120,422,400 multiplies; through 16 channels, 28*28*16 * 192 + 28*28*32 * 5*5*16 =
    2,408,448 + 10,035,200 = 12,443,648.
    """
    c, h, w = _check_shape(in_shape)
    pad = _same_padding(f)
    return BottleneckCost(
        in_shape=(c, h, w), out_channels=out_channels, f=f, bottleneck_channels=bottleneck_channels,
        direct_macs=conv_macs((c, h, w), out_channels, f, padding=pad),
        reduce_macs=conv_macs((c, h, w), bottleneck_channels, 1),
        expand_macs=conv_macs((bottleneck_channels, h, w), out_channels, f, padding=pad),
    )


def bottleneck_layers(in_shape: tuple[int, int, int] = (192, 28, 28), out_channels: int = 32, f: int = 5,
                      bottleneck_channels: int = 16) -> tuple[nn.Sequential, nn.Sequential]:
    """The real layers of the bottleneck lesson: (direct f x f convolution, 1x1 then f x f convolution)."""
    c = in_shape[0]
    pad = _same_padding(f)
    direct = nn.Sequential(nn.Conv2d(c, out_channels, f, padding=pad))
    through = nn.Sequential(
        nn.Conv2d(c, bottleneck_channels, 1), nn.ReLU(), nn.Conv2d(bottleneck_channels, out_channels, f, padding=pad)
    )
    return direct, through


@dataclass
class SeparableCost:
    """A normal convolution against a depthwise-separable one (depthwise f x f, then pointwise 1x1).

    Attributes:
        in_shape: (C, H, W) of the input.
        out_channels: channels of the result (n_c').
        f: filter size.
        standard_macs: multiplies of the normal convolution.
        depthwise_macs: multiplies of the depthwise step (one f x f filter per input channel).
        pointwise_macs: multiplies of the pointwise step (C -> n_c' with 1x1 filters).
    """

    in_shape: tuple[int, int, int]
    out_channels: int
    f: int
    standard_macs: int
    depthwise_macs: int
    pointwise_macs: int

    @property
    def separable_macs(self) -> int:
        return self.depthwise_macs + self.pointwise_macs

    @property
    def ratio(self) -> float:
        """Cost of the separable convolution relative to the normal one, from the counts."""
        return self.separable_macs / self.standard_macs

    @property
    def formula_ratio(self) -> float:
        """The course's formula 1/n_c' + 1/f^2, which the counts equal exactly."""
        return 1 / self.out_channels + 1 / self.f**2


def separable_cost(in_shape: tuple[int, int, int] = (3, 6, 6), out_channels: int = 5, f: int = 3, *,
                   padding: int = 0) -> SeparableCost:
    """The depthwise-separable lesson, from the formula.

    The default is the course's example: 6x6x3 -> 4x4x5 with 3x3 filters costs 2,160 multiplies normally and
    432 + 240 = 672 separably, a ratio of 0.311 = 1/5 + 1/9.
    """
    c, h, w = _check_shape(in_shape)
    h2, w2 = conv_output_size(h, f, pad=padding), conv_output_size(w, f, pad=padding)
    return SeparableCost(
        in_shape=(c, h, w), out_channels=out_channels, f=f,
        standard_macs=conv_macs((c, h, w), out_channels, f, padding=padding),
        depthwise_macs=conv_macs((c, h, w), c, f, padding=padding, groups=c),
        pointwise_macs=conv_macs((c, h2, w2), out_channels, 1),
    )


def separable_layers(in_shape: tuple[int, int, int] = (3, 6, 6), out_channels: int = 5, f: int = 3, *,
                     padding: int = 0) -> tuple[nn.Sequential, nn.Sequential]:
    """The real layers of the separable lesson: (normal convolution, depthwise then pointwise convolution)."""
    c = in_shape[0]
    standard = nn.Sequential(nn.Conv2d(c, out_channels, f, padding=padding))
    separable = nn.Sequential(nn.Conv2d(c, c, f, padding=padding, groups=c), nn.Conv2d(c, out_channels, 1))
    return standard, separable


def measured_macs(layers: nn.Module, in_shape: tuple[int, int, int]) -> int:
    """Multiply-adds of real layers for one input of shape (C, H, W), counted by `cnnkit.summary.summary`."""
    return summary(layers, in_shape).total_macs


def lessons(in_shape: tuple[int, int, int] | None = None, out_channels: int | None = None, f: int | None = None,
            bottleneck_channels: int | None = None) -> dict:
    """The three lessons as one dict, each with the formula's numbers and the counts measured on real layers.

    With no arguments each lesson uses the course's own example; the arguments replace them in all three.
    """
    kw = {k: v for k, v in (("in_shape", in_shape), ("out_channels", out_channels), ("f", f)) if v is not None}
    why = conv_vs_fully_connected(**kw)
    bkw = dict(kw, bottleneck_channels=bottleneck_channels) if bottleneck_channels is not None else kw
    bott = bottleneck_cost(**bkw)
    sep = separable_cost(**kw)
    with torch.device("meta"):  # layer sizes without values: counting MACs needs no arithmetic
        direct, through = bottleneck_layers(**bkw)
        standard, separable = separable_layers(**kw)
    return {
        "why_convolutions": asdict(why) | {"ratio": why.ratio},
        "bottleneck": asdict(bott) | {
            "bottleneck_macs": bott.bottleneck_macs, "saving": bott.saving,
            "measured_direct_macs": measured_macs(direct, bott.in_shape),
            "measured_bottleneck_macs": measured_macs(through, bott.in_shape),
        },
        "separable": asdict(sep) | {
            "separable_macs": sep.separable_macs, "ratio": sep.ratio, "formula_ratio": sep.formula_ratio,
            "measured_standard_macs": measured_macs(standard, sep.in_shape),
            "measured_separable_macs": measured_macs(separable, sep.in_shape),
        },
    }


def lessons_text(**kwargs) -> str:
    """The three lessons, explained with their numbers (what `cnnkit cost` prints); arguments as `lessons`."""
    d = lessons(**kwargs)
    w, b, s = d["why_convolutions"], d["bottleneck"], d["separable"]
    hwc = _hwc
    ms = s["measured_separable_macs"] / s["measured_standard_macs"]
    bname = f"through a {b['bottleneck_channels']}-channel 1x1 layer:"

    def row(label: str, n: int, rest: str = "") -> str:
        return f"   {label:<34}{n:>15,} {rest}".rstrip()

    return "\n".join([
        f"1. Why convolutions: {hwc(w['in_shape'])} -> {hwc(w['out_shape'])}",
        row("convolution:", w["conv_params"], "parameters"),
        row("fully connected:", w["fc_params"], f"parameters ({w['ratio']:,.0f} times more)"),
        f"   parameter sharing: each weight is used at {w['uses_per_weight']:,} positions;",
        f"   sparse connections: each output sees {w['conv_inputs_per_output']:,} input values, "
        f"not all {w['fc_inputs_per_output']:,}.",
        "",
        f"2. The 1x1 bottleneck: {hwc(b['in_shape'])} -> {hwc((b['out_channels'], *b['in_shape'][1:]))} "
        f"with a {b['f']}x{b['f']} convolution ('same' padding)",
        row("directly:", b["direct_macs"], f"multiplies (measured: {b['measured_direct_macs']:,})"),
        row(bname, b["bottleneck_macs"], f"multiplies = {b['reduce_macs']:,} + {b['expand_macs']:,} "
            f"(measured: {b['measured_bottleneck_macs']:,})"),
        f"   {b['saving']:.1f} times fewer.",
        "",
        f"3. Depthwise-separable: {hwc(s['in_shape'])} -> {s['out_channels']} channels with {s['f']}x{s['f']} "
        "filters",
        row("normal convolution:", s["standard_macs"], f"multiplies (measured: {s['measured_standard_macs']:,})"),
        row("depthwise + pointwise:", s["separable_macs"], f"multiplies = {s['depthwise_macs']:,} + "
            f"{s['pointwise_macs']:,} (measured: {s['measured_separable_macs']:,})"),
        f"   ratio {s['ratio']:.4f} (measured {ms:.4f}) = 1/n_c' + 1/f^2 = 1/{s['out_channels']} + 1/{s['f'] ** 2} "
        f"= {s['formula_ratio']:.4f}",
    ])


def _hwc(shape: tuple[int, int, int]) -> str:
    c, h, w = shape
    return f"{h}x{w}x{c}"


def _same_padding(f: int) -> int:
    if f % 2 == 0:
        raise InputError(f"'same' padding needs an odd filter size, got f={f}")
    return f // 2


def _check_shape(in_shape: tuple[int, int, int]) -> tuple[int, int, int]:
    try:
        c, h, w = (int(d) for d in in_shape)
    except (TypeError, ValueError):
        raise InputError(f"expected an input shape (C, H, W), got {in_shape!r}") from None
    if min(c, h, w) < 1:
        raise InputError(f"every size in the input shape {in_shape} must be at least 1")
    return c, h, w

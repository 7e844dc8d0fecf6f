"""Shape arithmetic of convolutional networks: output sizes, "same" padding, receptive fields, parameter counts.

The formulas are the course's, for one spatial axis:

- convolution and pooling: ``n_out = floor((n + 2p - f) / s) + 1``
- transposed convolution: ``n_out = (n - 1) * s - 2p + f + output_padding``
- receptive field of a stack, layer by layer: ``r_out = r_in + (f - 1) * j_in`` and ``j_out = j_in * s``,
  where ``j`` (the "jump") is the distance, in input pixels, between two neighbouring units of a layer.

A network can also be written as a list of short layer specs (the mini-syntax of `cnnkit shapes`, see
`LAYER_SYNTAX`) and walked with `trace`, which gives every layer's output shape, activation size, parameter count
and receptive field. Every invalid configuration (a stride of 0, negative padding, a filter larger than the padded
input) raises `InputError` naming the value and what to change.
"""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass

from cnnkit.errors import InputError

__all__ = [
    "LAYER_SYNTAX",
    "Layer",
    "LayerShape",
    "conv_output_size",
    "conv_transpose_output_size",
    "parse_layer",
    "pool_output_size",
    "receptive_field",
    "same_padding",
    "tf_same_padding",
    "trace",
]


def check_int(value, name: str, minimum: int) -> int:
    """`value` as an int >= `minimum`, or an InputError that names it."""
    if isinstance(value, bool):  # True is an int to Python, never a size
        raise InputError(f"{name} must be a whole number, got {value!r}")
    try:
        value = operator.index(value)
    except TypeError:
        raise InputError(f"{name} must be a whole number, got {value!r}") from None
    if value < minimum:
        hint = {0: "use 0 or more", 1: "use 1 or more"}.get(minimum, f"use {minimum} or more")
        raise InputError(f"{name} must be at least {minimum}, got {value}; {hint}")
    return value


def conv_output_size(n: int, f: int, *, stride: int = 1, pad: int = 0) -> int:
    """Output length of a convolution along one axis: ``floor((n + 2p - f) / s) + 1``.

    `stride` and `pad` are keyword-only: the course writes the formula with p before s, other texts the other
    way round, and a silent swap gives a wrong size (32 becomes 15).

    Args:
        n: input length (n_H or n_W).
        f: filter size.
        stride: step between two windows.
        pad: zeros added on each side.

    Returns:
        The output length, at least 1.

    Raises:
        InputError: a size below 1, a stride of 0, negative padding, or a filter larger than the padded input.
    """
    n, f = check_int(n, "input size", 1), check_int(f, "filter size f", 1)
    stride, pad = check_int(stride, "stride", 1), check_int(pad, "padding", 0)
    if f > n + 2 * pad:
        raise InputError(
            f"filter size {f} is larger than the padded input {n} + 2*{pad} = {n + 2 * pad}, so the output is empty; "
            "use a smaller filter or more padding"
        )
    return (n + 2 * pad - f) // stride + 1


def pool_output_size(n: int, f: int, *, stride: int | None = None, pad: int = 0) -> int:
    """Output length of a pooling layer along one axis; the stride defaults to the window size ``f``.

    Same formula and errors as `conv_output_size`.
    """
    return conv_output_size(n, f, stride=f if stride is None else stride, pad=pad)


def conv_transpose_output_size(n: int, f: int, stride: int = 1, pad: int = 0, output_padding: int = 0) -> int:
    """Output length of a transposed convolution: ``(n - 1) * s - 2p + f + output_padding``.

    ``output_padding`` (0 <= it < stride) picks one of the ``s`` input sizes that a strided convolution maps to
    the same output size, as in PyTorch's ``conv_transpose2d``.

    Raises:
        InputError: a size below 1, a stride of 0, negative padding, ``output_padding >= stride``, or a padding
            that crops the whole output away.
    """
    n, f = check_int(n, "input size", 1), check_int(f, "filter size f", 1)
    stride, pad = check_int(stride, "stride", 1), check_int(pad, "padding", 0)
    output_padding = check_int(output_padding, "output_padding", 0)
    if output_padding >= stride:
        raise InputError(f"output_padding must be smaller than the stride {stride}, got {output_padding}")
    out = (n - 1) * stride - 2 * pad + f + output_padding
    if out < 1:
        raise InputError(
            f"padding {pad} crops the whole transposed-convolution output ({(n - 1) * stride + f} before cropping); "
            "use less padding"
        )
    return out


def same_padding(f: int) -> int:
    """The padding that keeps the size at stride 1: ``p = (f - 1) / 2``, for an odd filter size ``f``.

    Raises:
        InputError: ``f`` is even (no symmetric padding keeps the size; see `tf_same_padding`).
    """
    f = check_int(f, "filter size f", 1)
    if f % 2 == 0:
        raise InputError(
            f"no symmetric 'same' padding exists for an even filter size {f}; use an odd f, or tf_same_padding "
            "for an uneven (before, after) padding"
        )
    return (f - 1) // 2


def tf_same_padding(n: int, f: int, stride: int = 1) -> tuple[int, int]:
    """TensorFlow's "SAME" padding: the output has ``ceil(n / s)`` units, extra zeros go after.

    Returns:
        (before, after): zeros to add at the start and at the end of the axis.
    """
    n, f, stride = check_int(n, "input size", 1), check_int(f, "filter size f", 1), check_int(stride, "stride", 1)
    out = -(-n // stride)
    total = max((out - 1) * stride + f - n, 0)
    return total // 2, total - total // 2


def receptive_field(layers: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Receptive field and jump after each layer of a stack, along one axis.

    Args:
        layers: ``(f, stride)`` of each layer, first to last (padding does not change the receptive field).

    Returns:
        ``(r, j)`` after each layer: ``r`` input pixels are seen by one unit, neighbouring units are ``j`` pixels
        apart.
    """
    r, j = 1, 1
    out = []
    for i, (f, s) in enumerate(layers):
        f, s = check_int(f, f"filter size of layer {i + 1}", 1), check_int(s, f"stride of layer {i + 1}", 1)
        r, j = r + (f - 1) * j, j * s
        out.append((r, j))
    return out


# ---------------------------------------------------------------------------------------------------------------------
# The layer mini-syntax of `cnnkit shapes`.

LAYER_SYNTAX = """\
Layer specs (case does not matter; [..] is optional):
  conv<F>[x<F2>][s<S>][p<P>|psame][c<C>]   convolution, F x F (or F x F2) filters, stride S (default 1),
                                           padding P (default 0; 'psame' = (F-1)/2 for odd F), C filters
                                           (default: as many as input channels).  e.g. conv5x5s1p0c6, conv3psamec64
  pool<F>[s<S>][p<P>]                      max pooling, F x F window, stride S (default F).  e.g. pool2, pool3s2
  maxpool<F>..., avgpool<F>...             the same, naming the kind of pooling
  tconv<F>[x<F2>][s<S>][p<P>][o<O>][c<C>]  transposed convolution, output_padding O (default 0).  e.g. tconv2s2c64
  gap                                      global average pooling: H x W x C -> 1 x 1 x C
  fc<N>                                    fully connected layer with N units (flattens its input).  e.g. fc120
"""

_NUM = r"(\d+)"
_PATTERNS = {
    "conv": re.compile(rf"conv{_NUM}(?:x{_NUM})?(?:s{_NUM})?(?:p(?:{_NUM}|(same)))?(?:c{_NUM})?"),
    "tconv": re.compile(rf"tconv{_NUM}(?:x{_NUM})?(?:s{_NUM})?(?:p{_NUM})?(?:o{_NUM})?(?:c{_NUM})?"),
    "pool": re.compile(rf"(max|avg)?pool{_NUM}(?:s{_NUM})?(?:p{_NUM})?"),
    "gap": re.compile(r"gap"),
    "fc": re.compile(rf"(?:fc|dense){_NUM}"),
}


@dataclass(frozen=True)
class Layer:
    """One layer of a stack, as `parse_layer` reads it from its spec."""

    spec: str  # the text it was parsed from, for messages and tables
    kind: str  # "conv", "tconv", "maxpool", "avgpool", "gap" or "fc"
    f: tuple[int, int] = (1, 1)  # filter or window size (height, width)
    stride: int = 1
    pad: int = 0
    output_padding: int = 0  # transposed convolution only
    channels: int | None = None  # filters (conv, tconv) or units (fc); None keeps the input's channels


def parse_layer(spec: str) -> Layer:
    """Read one layer spec of the mini-syntax (see `LAYER_SYNTAX`), e.g. ``conv5x5s1p0c6`` or ``pool2``.

    Raises:
        InputError: the spec does not follow the syntax, or a value in it is out of range.
    """
    text = spec.strip().lower()
    for kind, pattern in _PATTERNS.items():
        m = pattern.fullmatch(text)
        if m is None:
            continue
        g = m.groups()
        if kind == "conv":
            fh = check_int(int(g[0]), f"filter size in {spec!r}", 1)
            fw = check_int(int(g[1]), f"filter width in {spec!r}", 1) if g[1] else fh
            if g[4]:  # psame
                if fh % 2 == 0 or fw % 2 == 0:
                    raise InputError(f"'psame' in {spec!r} needs an odd filter size; write the padding as p<number>")
                pad = (fh - 1) // 2
                if fh != fw:
                    raise InputError(f"'psame' in {spec!r} needs a square filter; write the padding as p<number>")
            else:
                pad = int(g[3]) if g[3] else 0
            stride = check_int(int(g[2]), f"stride in {spec!r}", 1) if g[2] else 1
            channels = check_int(int(g[5]), f"filter count in {spec!r}", 1) if g[5] else None
            return Layer(spec, "conv", (fh, fw), stride, pad, 0, channels)
        if kind == "tconv":
            fh = check_int(int(g[0]), f"filter size in {spec!r}", 1)
            fw = check_int(int(g[1]), f"filter width in {spec!r}", 1) if g[1] else fh
            stride = check_int(int(g[2]), f"stride in {spec!r}", 1) if g[2] else 1
            channels = check_int(int(g[5]), f"filter count in {spec!r}", 1) if g[5] else None
            return Layer(spec, "tconv", (fh, fw), stride, int(g[3] or 0), int(g[4] or 0), channels)
        if kind == "pool":
            f = check_int(int(g[1]), f"window size in {spec!r}", 1)
            stride = check_int(int(g[2]), f"stride in {spec!r}", 1) if g[2] else f
            return Layer(spec, f"{g[0] or 'max'}pool", (f, f), stride, int(g[3] or 0))
        if kind == "gap":
            return Layer(spec, "gap")
        return Layer(spec, "fc", channels=check_int(int(g[0]), f"unit count in {spec!r}", 1))
    raise InputError(
        f"cannot read layer spec {spec!r}; write e.g. conv5x5s1p0c6, pool2, avgpool3s2, tconv2s2c16, gap or fc120 "
        "(see `cnnkit shapes --help`)"
    )


@dataclass(frozen=True)
class LayerShape:
    """What `trace` finds after one layer."""

    layer: Layer | None  # None for the input row
    shape: tuple[int, ...]  # (H, W, C), or (N,) after a fully connected layer
    params: int  # weights and biases of this layer
    # (height, width) in input pixels; None once it covers the whole input (after gap or fc). A transposed
    # convolution spaces its units unevenly when f is not a multiple of s, so from there on it is an estimate that
    # uses the largest window (ceil(f / s) inputs) and the average spacing (jump / s).
    receptive_field: tuple[float, float] | None
    jump: tuple[float, float] | None  # input pixels between neighbouring units (below 1 after upsampling)

    @property
    def size(self) -> int:
        """Number of activations (the course's "activation size")."""
        out = 1
        for d in self.shape:
            out *= d
        return out


def trace(input_shape: tuple[int, int, int], layers: list[Layer | str]) -> list[LayerShape]:
    """Walk a stack of layers from an ``(H, W, C)`` input, as the course's "activation shape" table does.

    Args:
        input_shape: (n_H, n_W, n_C) of the input.
        layers: `Layer` objects or their specs (``"conv5x5c6"``).

    Returns:
        One `LayerShape` for the input, then one per layer.

    Raises:
        InputError: a spec cannot be read, or a layer gets an input it cannot handle (empty output, a spatial
            layer after a fully connected one), naming the layer.
    """
    h, w, c = (check_int(v, "input size", 1) for v in input_shape)
    rows = [LayerShape(None, (h, w, c), 0, (1, 1), (1, 1))]
    rf, jump = (1, 1), (1, 1)
    flat = False  # after a fully connected layer, spatial layers make no sense
    for i, item in enumerate(layers):
        layer = parse_layer(item) if isinstance(item, str) else item
        where = f"layer {i + 1} ({layer.spec})"
        if layer.kind == "fc":
            n_in = h * w * c if not flat else rows[-1].size
            units = layer.channels
            rows.append(LayerShape(layer, (units,), (n_in + 1) * units, None, None))
            flat, rf, jump = True, None, None
            continue
        if flat:
            raise InputError(f"{where} needs an H x W x C input but follows a flattening layer; move it earlier")
        if layer.kind == "gap":
            h, w, params, rf, jump = 1, 1, 0, None, None
        else:
            try:
                if layer.kind == "tconv":
                    h2 = conv_transpose_output_size(h, layer.f[0], layer.stride, layer.pad, layer.output_padding)
                    w2 = conv_transpose_output_size(w, layer.f[1], layer.stride, layer.pad, layer.output_padding)
                else:
                    h2 = conv_output_size(h, layer.f[0], stride=layer.stride, pad=layer.pad)
                    w2 = conv_output_size(w, layer.f[1], stride=layer.stride, pad=layer.pad)
            except InputError as e:
                raise InputError(f"{where} on a {h}x{w}x{c} input: {e}") from None
            c_out = (layer.channels or c) if layer.kind in ("conv", "tconv") else c
            params = (layer.f[0] * layer.f[1] * c + 1) * c_out if layer.kind in ("conv", "tconv") else 0
            if rf is not None:
                if layer.kind == "tconv":
                    # A transposed conv with stride s upsamples: neighbours are j/s input pixels apart, and each
                    # output unit still sees ceil(f/s) input units of the layer below.
                    rf = tuple(r + (-(-f // layer.stride) - 1) * j for r, f, j in zip(rf, layer.f, jump, strict=True))
                    jump = tuple(j / layer.stride for j in jump)
                    jump = tuple(int(j) if float(j).is_integer() else j for j in jump)
                else:
                    rf = tuple(r + (f - 1) * j for r, f, j in zip(rf, layer.f, jump, strict=True))
                    jump = tuple(j * layer.stride for j in jump)
            h, w, c = h2, w2, c_out
        rows.append(LayerShape(layer, (h, w, c), params, rf, jump))
    return rows

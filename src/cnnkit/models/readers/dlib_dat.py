"""A pure-Python reader of dlib's DNN serialisation (`net_type` written with `dlib::serialize(file) << net`).

dlib writes a network as nested objects, outermost first:

- the loss layer: int version 1, its details ("loss_metric_2", margin, distance threshold), then the network;
- every `add_layer` (a computational layer over its subnetwork): int version 2, the subnetwork, then the layer's
  details, three bools and three tensors (gradients and cached outputs: empty in a cleaned network);
- every tag or skip layer (`tag1`, `skip1`): int version 1 and the subnetwork, nothing else (their ids are
  template arguments: not in the file);
- the innermost `add_layer` over the input layer: int version 3, the input layer's details ("input_rgb_image_sized",
  the mean of each colour, rows, columns), the layer's details, three bools, three tensors and an int.

So the file holds a run of version numbers (one per wrapper, outermost first), then the input and every
computational layer's details in input-to-output order. Each layer's details start with its tag string:

    con_4      params tensor, num_filters, nr, nc, stride_y, stride_x, padding_y, padding_x, filters and biases
               (alias tensors: shapes into params), 4 learning-rate/weight-decay multipliers (doubles)
    affine_    params tensor (gamma then beta), gamma and beta alias tensors, mode (0 CONV_MODE, 1 FC_MODE)
    fc_2       num_outputs, num_inputs, params tensor ((num_inputs [+1 bias row]) x num_outputs), weights and
               biases alias tensors, bias mode (0 FC_HAS_BIAS, 1 FC_NO_BIAS), 4 multipliers
    max_pool_2 / avg_pool_2   nr, nc, stride_y, stride_x, padding_y, padding_x (0 x 0: the whole map)
    relu_, add_prev_          nothing

Encodings (dlib/serialize.h): an integer is a control byte (low nibble: byte count, bit 7: negative) then that many
little-endian bytes; a float or double is a mantissa integer and a base-2 exponent integer; a bool is the byte
"1" or "0"; a string its length then its bytes; a tensor is version 2, num_samples, k, nr, nc (integers) then
the raw little-endian float32 values. Layer tags this reader does not know are refused by name.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cnnkit.errors import FileFormatError


@dataclass
class DlibLayer:
    """One computational layer of a dlib network.

    Attributes:
        kind: the layer's serialisation tag ("con_4", "affine_", "relu_" ...).
        arrays: its tensors as NumPy arrays in dlib's layout ("filters" (out, in, kh, kw), "biases" (out,),
            "gamma"/"beta" (k,), "weights" (num_inputs, num_outputs)).
        attrs: its integer and float settings (stride, padding, num_outputs, mode ...).
    """

    kind: str
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    attrs: dict[str, float] = field(default_factory=dict)


@dataclass
class DlibNetwork:
    """What a dlib DNN file holds.

    Attributes:
        loss: the loss layer's tag ("loss_metric_2").
        loss_attrs: its settings (margin, distance_threshold for loss_metric).
        input: the input layer's tag ("input_rgb_image_sized").
        input_attrs: its settings (avg_red, avg_green, avg_blue, nr, nc).
        layers: the computational layers, input to output.
        wrappers: the version numbers of the nesting, outermost first (2 add_layer, 1 tag/skip, 3 innermost).
    """

    loss: str
    loss_attrs: dict[str, float]
    input: str
    input_attrs: dict[str, float]
    layers: list[DlibLayer]
    wrappers: list[int]


class _Stream:
    def __init__(self, data: bytes, path: str) -> None:
        self.data, self.pos, self.path = data, 0, path

    def fail(self, what: str) -> FileFormatError:
        return FileFormatError(f"{self.path}: not a dlib network file this reader understands ({what} at byte "
                               f"{self.pos:,}); it may be truncated or of another kind")

    def byte(self) -> int:
        if self.pos >= len(self.data):
            raise self.fail("unexpected end of file")
        b = self.data[self.pos]
        self.pos += 1
        return b

    def int(self) -> int:
        control = self.byte()
        size = control & 0x0F
        if size > 8 or control & 0x70:
            raise self.fail(f"bad integer control byte 0x{control:02x}")
        if self.pos + size > len(self.data):
            raise self.fail("unexpected end of file")
        value = int.from_bytes(self.data[self.pos:self.pos + size], "little")
        self.pos += size
        return -value if control & 0x80 else value

    def float(self) -> float:
        mantissa, exponent = self.int(), self.int()
        return math.ldexp(mantissa, exponent) if abs(exponent) < 2000 else float("nan")

    def bool(self) -> bool:
        b = self.byte()
        if b not in (0x30, 0x31):
            raise self.fail(f"bad bool byte 0x{b:02x}")
        return b == 0x31

    def string(self, limit: int = 64) -> str:
        n = self.int()
        if not 0 <= n <= limit or self.pos + n > len(self.data):
            raise self.fail(f"bad string length {n}")
        s = self.data[self.pos:self.pos + n]
        self.pos += n
        try:
            return s.decode("ascii")
        except UnicodeDecodeError:
            raise self.fail("a layer tag that is not text") from None

    def tensor(self) -> np.ndarray:
        version = self.int()
        if version != 2:
            raise self.fail(f"tensor version {version}, expected 2")
        shape = tuple(self.int() for _ in range(4))
        count = math.prod(shape)
        if min(shape) < 0 or self.pos + 4 * count > len(self.data):
            raise self.fail(f"tensor of shape {shape} runs past the end of the file")
        arr = np.frombuffer(self.data, dtype="<f4", count=count, offset=self.pos).reshape(shape)
        self.pos += 4 * count
        return arr.astype(np.float32)

    def alias(self) -> tuple[int, int, int, int]:
        if self.int() != 1:
            raise self.fail("alias tensor version, expected 1")
        return tuple(self.int() for _ in range(4))


def _split(params: np.ndarray, shapes: list[tuple[int, ...]], s: _Stream) -> list[np.ndarray]:
    flat, out, offset = params.reshape(-1), [], 0
    for shape in shapes:
        n = math.prod(shape)
        if offset + n > flat.size:
            raise s.fail(f"parameter views {shapes} larger than the {flat.size} stored values")
        out.append(flat[offset:offset + n].reshape(shape))
        offset += n
    return out


def _layer(s: _Stream) -> DlibLayer:
    kind = s.string()
    layer = DlibLayer(kind)
    if kind == "con_4":
        params = s.tensor()
        names = ("num_filters", "nr", "nc", "stride_y", "stride_x", "padding_y", "padding_x")
        layer.attrs = {n: s.int() for n in names}
        fshape, bshape = s.alias(), s.alias()
        layer.arrays["filters"], layer.arrays["biases"] = _split(params, [fshape, (math.prod(bshape),)], s)
        for n in ("lr_mult", "wd_mult", "bias_lr_mult", "bias_wd_mult"):
            layer.attrs[n] = s.float()
    elif kind == "affine_":
        params = s.tensor()
        gshape, bshape = s.alias(), s.alias()
        layer.arrays["gamma"], layer.arrays["beta"] = _split(params, [(math.prod(gshape),), (math.prod(bshape),)], s)
        layer.attrs["mode"] = s.int()
    elif kind == "fc_2":
        layer.attrs["num_outputs"], layer.attrs["num_inputs"] = s.int(), s.int()
        params = s.tensor()
        wshape, bshape = s.alias(), s.alias()
        layer.attrs["bias_mode"] = s.int()
        shapes = [(wshape[0], wshape[1])] + ([(math.prod(bshape),)] if layer.attrs["bias_mode"] == 0 else [])
        parts = _split(params, shapes, s)
        layer.arrays["weights"] = parts[0]
        if len(parts) > 1:
            layer.arrays["biases"] = parts[1]
        for n in ("lr_mult", "wd_mult", "bias_lr_mult", "bias_wd_mult"):
            layer.attrs[n] = s.float()
    elif kind in ("max_pool_2", "avg_pool_2"):
        for n in ("nr", "nc", "stride_y", "stride_x", "padding_y", "padding_x"):
            layer.attrs[n] = s.int()
    elif kind in ("relu_", "add_prev_"):
        pass
    else:
        raise FileFormatError(f"{s.path}: dlib layer {kind!r} is not supported by cnnkit's reader (it reads con_4, "
                              "affine_, fc_2, max_pool_2, avg_pool_2, relu_, add_prev_)")
    return layer


def _skip_state(s: _Stream, innermost: bool) -> None:
    """The bools and tensors an add_layer stores after its details (empty in a cleaned network)."""
    for _ in range(3):
        s.bool()
    for _ in range(3):
        s.tensor()
    if innermost:
        s.int()  # _sample_expansion_factor


def read_dlib_dnn(path: str | os.PathLike, *, expect_loss: str | None = None) -> DlibNetwork:
    """Read a dlib DNN file without dlib.

    Args:
        path: a .dat file written by dlib's `serialize(file) << net`.
        expect_loss: a loss tag prefix ("loss_metric") the file must have; anything else (a shape predictor, the
            MMOD detector's "loss_mmod_") is refused with one line.

    Returns:
        The loss, input and computational layers (input to output).

    Raises:
        FileFormatError: not a dlib DNN file, another network than expected, truncated, or an unsupported layer.
    """
    p = Path(path)
    s = _Stream(p.read_bytes(), str(p))
    try:
        version = s.int()
        loss = s.string() if version == 1 else ""
    except FileFormatError:
        loss = ""
    if not loss.startswith("loss_") or (expect_loss and not loss.startswith(expect_loss)):
        found = f"a dlib network with loss {loss!r}" if loss.startswith("loss_") else "not a dlib DNN file"
        raise FileFormatError(f"{p} is {found}, not the network expected ({expect_loss or 'a dlib DNN'}); dlib's "
                              "shape predictors and other networks cannot be loaded here")
    loss_attrs: dict[str, float] = {}
    if loss == "loss_metric_2":
        loss_attrs = {"margin": s.float(), "distance_threshold": s.float()}
    elif loss == "loss_metric_":
        loss_attrs = {"margin": s.float()}
    else:
        raise FileFormatError(f"{p}: dlib loss {loss!r} is not supported by cnnkit's reader")

    wrappers = []
    while True:
        v = s.int()
        wrappers.append(v)
        if v == 3:
            break
        if v not in (1, 2) or len(wrappers) > 10_000:
            raise s.fail(f"layer wrapper version {v}")
    input_tag = s.string()
    if input_tag != "input_rgb_image_sized":
        raise FileFormatError(f"{p}: dlib input layer {input_tag!r} is not supported by cnnkit's reader")
    input_attrs = {"avg_red": s.float(), "avg_green": s.float(), "avg_blue": s.float(), "nr": s.int(), "nc": s.int()}
    layers = [_layer(s)]
    _skip_state(s, innermost=True)
    for v in reversed(wrappers[:-1]):
        if v == 2:
            layers.append(_layer(s))
            _skip_state(s, innermost=False)
    if s.pos != len(s.data):
        raise s.fail(f"{len(s.data) - s.pos:,} bytes left after the network")
    return DlibNetwork(loss, loss_attrs, input_tag, input_attrs, layers, wrappers)

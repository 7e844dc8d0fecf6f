"""Layer-by-layer summaries of any `nn.Module`: activation shapes and sizes, parameters and multiply-adds.

`summary(model, (C, H, W))` runs one forward pass on a random tensor of shape (1, C, H, W) with forward hooks on
the leaf modules and returns a `ModelSummary`: one row per layer call, and totals. It is the course's table
("activation shape, activation size, # parameters") for any network, plus the cost of each layer.

What is counted:
    - Parameters: every parameter of the model once, so `total_params == sum(p.numel() for p in
      model.parameters())` even for parameters that sit on a container or are never reached by the forward pass.
    - Multiply-adds (MACs): `Conv1d/2d/3d` (grouped and depthwise too), `ConvTranspose1d/2d/3d` and `Linear`,
      bias additions not included. That is what published figures count (torchvision's resnet50: 4.089 GMACs at
      224x224). Pooling, normalisation and activations cost no MACs here.
    - Activations: the number of values a layer outputs for one image (the course's "activation size").

The Python API takes the input shape as (C, H, W), like torch; the `cnnkit summary` command takes HxWxC, like
the course, and prints shapes as HxWxC.

Example:
    >>> from cnnkit.models import create_model
    >>> s = summary(create_model("course_convnet"))
    >>> [(r.activation_size, r.params) for r in s.rows][:2]
    [(4704, 456), (1176, 0)]
"""

from __future__ import annotations

import textwrap
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn as nn

from cnnkit.errors import InputError

# Parameter-free layers that act value by value (or only reshape): the course counts a CONV layer's ReLU as part of
# that layer, so by default these rows are hidden and their cost (always zero) is left to the layer before them.
ELEMENTWISE_TYPES: tuple[type[nn.Module], ...] = (
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU, nn.SiLU, nn.Mish, nn.Sigmoid, nn.Tanh,
    nn.Hardswish, nn.Hardsigmoid, nn.Hardtanh, nn.Softplus, nn.Softsign, nn.Tanhshrink, nn.Threshold,
    nn.LogSigmoid, nn.Identity, nn.Flatten, nn.Unflatten,
    nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.FeatureAlphaDropout,
)

_UNREACHED = "(not called by forward)"


@dataclass
class LayerRow:
    """One call of one layer in the forward pass.

    Attributes:
        name: the module's qualified name in the model ("features.0"); "" for the model itself.
        layer_type: the module's class name ("Conv2d").
        output_shape: output shape for one image, batch dimension dropped, in torch order ((C, H, W) for a
            feature map, (N,) for a vector). A layer with several outputs gives a tuple of such shapes.
        input_shape: shape of the first tensor the layer received, for one image, in torch order.
        activation_size: number of values the layer outputs for one image.
        params: parameters owned by this layer and not already counted on an earlier row (a layer called twice
            counts its parameters once).
        macs: multiply-adds of this call for one image.
        fc_equivalent_params: for Conv/ConvTranspose/Linear, the parameters (weights and biases) a fully-connected
            layer mapping the same input values to the same output values would need; None for other layers.
    """

    name: str
    layer_type: str
    output_shape: tuple
    input_shape: tuple[int, ...]
    activation_size: int
    params: int
    macs: int
    fc_equivalent_params: int | None = None

    @property
    def shape_hwc(self) -> str:
        """The output shape written as the course does: "28x28x6" for a (6, 28, 28) map, "120" for a vector."""
        return format_shape_hwc(self.output_shape)


@dataclass
class ModelSummary:
    """The result of `summary`: one row per layer call, and totals for one image.

    Attributes:
        model_name: class name of the summarised module (or the name given to `summary`).
        input_shape: (C, H, W) of one input image (any shape without the batch dimension for non-image models).
        rows: the layer calls in forward order (parameter-free element-wise layers left out when
            `hide_elementwise` was set).
        total_params: every parameter of the model, counted once.
        trainable_params: those with requires_grad.
        total_macs: multiply-adds of the whole forward pass (hidden rows included; they cost zero).
        total_activations: sum of `activation_size` over `rows` (what the table shows).
    """

    model_name: str
    input_shape: tuple[int, ...]
    rows: list[LayerRow] = field(default_factory=list)
    total_params: int = 0
    trainable_params: int = 0
    total_macs: int = 0
    total_activations: int = 0

    @property
    def input_size(self) -> int:
        """Number of values in one input image (the course's first row: 32x32x3 = 3,072)."""
        n = 1
        for d in self.input_shape:
            n *= d
        return n

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; shapes are lists in torch order, with "output_shape_hwc" strings beside them."""
        rows = []
        for r in self.rows:
            d = asdict(r)
            d["output_shape"] = _listify(r.output_shape)
            d["input_shape"] = list(r.input_shape)
            d["output_shape_hwc"] = r.shape_hwc
            rows.append(d)
        return {
            "model": self.model_name,
            "input_shape": list(self.input_shape),
            "input_shape_hwc": format_shape_hwc(self.input_shape),
            "input_size": self.input_size,
            "rows": rows,
            "total_params": self.total_params,
            "trainable_params": self.trainable_params,
            "total_macs": self.total_macs,
            "total_activations": self.total_activations,
        }

    def to_text(self, *, why: bool = False, names: bool = True) -> str:
        """The summary as a plain-text table (shapes as HxWxC, like the course), with totals.

        Args:
            why: add the "why convolutions" columns: the parameters a fully-connected layer of the same input
                and output sizes would need, and how many times fewer the layer has.
            names: show the module names (off: a narrower table with layer types only).
        """
        headers = (["Layer"] if names else []) + ["Type", "Output shape", "Activations", "Params", "MACs"]
        if why:
            headers += ["FC-equivalent params", "FC / layer"]
        table = []
        for r in self.rows:
            cells = ([r.name or "(model)"] if names else []) + [
                r.layer_type, r.shape_hwc, f"{r.activation_size:,}", f"{r.params:,}", f"{r.macs:,}"
            ]
            if why:
                fc = r.fc_equivalent_params
                ratio = f"{fc / r.params:,.0f}x" if fc is not None and r.params else ""
                cells += [f"{fc:,}" if fc is not None else "", ratio]
            table.append(cells)
        right = set(range(len(headers) - (5 if why else 3), len(headers)))  # numeric columns align right
        widths = [max(len(h), *(len(row[i]) for row in table)) if table else len(h) for i, h in enumerate(headers)]

        def line(cells: list[str]) -> str:
            pairs = enumerate(zip(cells, widths, strict=True))
            cols = (c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in pairs)
            return "  ".join(cols).rstrip()

        rule = "-" * max(len(line(headers)), *(len(line(c)) for c in table))
        out = [
            f"{self.model_name}: input {format_shape_hwc(self.input_shape)} ({self.input_size:,} values)",
            rule, line(headers), rule, *(line(c) for c in table), rule,
            f"Total params:      {self.total_params:,} (trainable {self.trainable_params:,})",
            f"Total MACs:        {self.total_macs:,} ({format_count(self.total_macs)}MACs per image)",
            f"Total activations: {self.total_activations:,} (values output by the rows above, per image)",
        ]
        if why:
            out += textwrap.wrap(
                "FC-equivalent: a fully-connected layer joining every input value to every output value. Convolutions "
                "need far fewer: one small filter is shared across all positions (parameter sharing) and each output "
                "looks at a small window only (sparse connections).", width=100
            )
        return "\n".join(out)

    def __str__(self) -> str:
        return self.to_text()


def summary(
    module: nn.Module,
    input_shape: tuple[int, ...] | None = None,
    *,
    hide_elementwise: bool = True,
    input_data: torch.Tensor | None = None,
    name: str | None = None,
) -> ModelSummary:
    """Summarise `module` layer by layer with one forward pass (in eval mode, without gradients).

    The model's train/eval flags are restored afterwards, and no global random state is touched. A model built on
    the meta device (`with torch.device("meta"): ...`) is summarised without computing anything, which makes the
    MAC count of large networks instant.

    Args:
        module: any network; several outputs (tuples, dicts, auxiliary heads) are fine.
        input_shape: one input without the batch dimension, in torch order: (C, H, W), e.g. (3, 224, 224).
            Default: the model's `default_input_size` when it has one.
        hide_elementwise: leave out rows of parameter-free element-wise layers (ReLU, dropout, flatten ...),
            as the course's table does.
        input_data: a ready input batch (batch size 1) instead of a random one; `input_shape` is then ignored.
        name: the name shown in the table's title; default: the module's class name.

    Returns:
        The summary: rows in forward order, and totals for one image.

    Raises:
        InputError: no input shape given and the model has no default, a size below 1, or the model cannot take
            an input of that shape.
    """
    if input_data is None:
        input_shape = _check_input_shape(module, input_shape)
        device, dtype = _device_dtype(module)
        # a private generator: summarising a model must not change the user's random stream
        gen = torch.Generator().manual_seed(0)
        input_data = torch.randn((1, *input_shape), generator=gen).to(device=device, dtype=dtype)
    else:
        input_shape = tuple(int(d) for d in input_data.shape[1:])
    batch = max(int(input_data.shape[0]), 1) if input_data.dim() else 1

    names: dict[int, str] = {}
    for qual_name, m in module.named_modules():
        names.setdefault(id(m), qual_name)

    all_rows: list[tuple[LayerRow, bool]] = []  # (row, hideable)
    seen_params: set[int] = set()

    def own_params(m: nn.Module) -> int:
        n = 0
        for p in m.parameters(recurse=False):
            if id(p) not in seen_params:
                seen_params.add(id(p))
                n += p.numel()
        return n

    def hook(m: nn.Module, inputs: tuple, output: Any) -> None:
        outs = _tensors(output)
        shapes = tuple(tuple(int(d) for d in t.shape[1:]) for t in outs)
        out_shape = shapes[0] if len(shapes) == 1 else shapes
        act = sum(t.numel() for t in outs) // batch
        first_in = next(iter(_tensors(inputs)), None)
        in_shape = tuple(int(d) for d in first_in.shape[1:]) if first_in is not None else ()
        in_numel = first_in.numel() // batch if first_in is not None else 0
        macs = _layer_macs(m, first_in, outs[0] if outs else None) // batch
        fc = fc_equivalent_params(in_numel, act) if _is_weighted(m) else None
        params = own_params(m)
        hideable = isinstance(m, ELEMENTWISE_TYPES) and params == 0
        row = LayerRow(names.get(id(m), ""), type(m).__name__, out_shape, in_shape, act, params, macs, fc)
        all_rows.append((row, hideable))

    handles = []
    modes = {m: m.training for m in module.modules()}
    try:
        for m in module.modules():
            is_leaf = next(m.children(), None) is None
            has_own = next(m.parameters(recurse=False), None) is not None
            if is_leaf or has_own:
                handles.append(m.register_forward_hook(hook))
        module.eval()
        with torch.no_grad():
            try:
                module(input_data)
            except (RuntimeError, ValueError) as e:  # a shape the network cannot take: say which, in one line
                first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                shape_txt = format_shape_hwc(tuple(input_data.shape[1:]))
                raise InputError(
                    f"{name or type(module).__name__} cannot take an input of shape {shape_txt} (HxWxC): {first}"
                ) from None
    finally:
        for h in handles:
            h.remove()
        for m, mode in modes.items():
            m.train(mode)

    # parameters the forward pass never reached (an auxiliary head that runs only in training, an unused layer):
    # one extra row keeps the rule that the rows' parameters add up to the total
    unreached = sum(p.numel() for p in module.parameters() if id(p) not in seen_params)
    if unreached:
        all_rows.append((LayerRow(_UNREACHED, "", (), (), 0, unreached, 0, None), False))

    rows = [r for r, hideable in all_rows if not (hide_elementwise and hideable)]
    params = list(module.parameters())
    return ModelSummary(
        model_name=name or type(module).__name__,
        input_shape=tuple(input_shape),
        rows=rows,
        total_params=sum(p.numel() for p in params),
        trainable_params=sum(p.numel() for p in params if p.requires_grad),
        total_macs=sum(r.macs for r, _ in all_rows),
        total_activations=sum(r.activation_size for r in rows),
    )


def fc_equivalent_params(in_values: int, out_values: int, bias: bool = True) -> int:
    """Parameters of a fully-connected layer from `in_values` inputs to `out_values` outputs.

    The course's example: 32x32x3 = 3,072 inputs to 28x28x6 = 4,704 outputs needs 3,072 x 4,704 weights (about
    14 million), against 456 for the 5x5 convolution that produces the same output shape.
    """
    return in_values * out_values + (out_values if bias else 0)


def format_shape_hwc(shape: tuple) -> str:
    """Write a torch-order shape as the course does: (6, 28, 28) -> "28x28x6", (120,) -> "120"."""
    if shape and isinstance(shape[0], tuple):
        return ", ".join(format_shape_hwc(s) for s in shape)
    if len(shape) >= 3:  # (C, *spatial) -> spatial x C
        shape = (*shape[1:], shape[0])
    return "x".join(str(d) for d in shape) if shape else "-"


def format_count(n: float) -> str:
    """A count with an SI prefix and a trailing space: 4_089_184_256 -> "4.089 G"."""
    for div, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= div:
            return f"{n / div:.4g} {prefix}"
    return f"{n:g} "


def _layer_macs(m: nn.Module, x: torch.Tensor | None, y: torch.Tensor | None) -> int:
    """Multiply-adds of one call of a Conv, ConvTranspose or Linear layer (whole batch); 0 for anything else."""
    if x is None or y is None:
        return 0
    if isinstance(m, nn.modules.conv._ConvTransposeNd):
        # every input value is multiplied by one (C_out / groups) x k x k slice of the weight
        k = 1
        for s in m.kernel_size:
            k *= s
        return x.numel() * (m.out_channels // m.groups) * k
    if isinstance(m, nn.modules.conv._ConvNd):
        # every output value is a dot product over a (C_in / groups) x k x k window
        k = 1
        for s in m.kernel_size:
            k *= s
        return y.numel() * (m.in_channels // m.groups) * k
    if isinstance(m, nn.Linear):
        return y.numel() * m.in_features
    return 0


def _is_weighted(m: nn.Module) -> bool:
    return isinstance(m, (nn.modules.conv._ConvNd, nn.Linear))


def _tensors(obj: Any) -> list[torch.Tensor]:
    """Every tensor inside an output: a tensor, or nested tuples, lists, dicts, named tuples, dataclasses."""
    if isinstance(obj, torch.Tensor):
        return [obj]
    if isinstance(obj, dict):
        obj = list(obj.values())
    elif hasattr(obj, "__dataclass_fields__"):
        obj = [getattr(obj, f) for f in obj.__dataclass_fields__]
    if isinstance(obj, (tuple, list)):
        return [t for item in obj for t in _tensors(item)]
    return []


def _listify(shape: tuple) -> list:
    return [_listify(s) if isinstance(s, tuple) else s for s in shape]


def _device_dtype(module: nn.Module) -> tuple[torch.device, torch.dtype]:
    for t in (*module.parameters(), *module.buffers()):
        if t.is_floating_point():
            return t.device, t.dtype
    return torch.device("cpu"), torch.get_default_dtype()


def _check_input_shape(module: nn.Module, input_shape: tuple[int, ...] | None) -> tuple[int, ...]:
    if input_shape is None:
        input_shape = getattr(module, "default_input_size", None)
        if input_shape is None:
            raise InputError(
                f"{type(module).__name__} has no default_input_size; give input_shape as (C, H, W), e.g. (3, 224, 224)"
            )
    try:
        shape = tuple(int(d) for d in input_shape)
    except (TypeError, ValueError):
        raise InputError(f"input_shape must be a tuple of sizes such as (3, 224, 224), got {input_shape!r}") from None
    if not shape or min(shape) < 1:
        raise InputError(f"every size in input_shape {shape} must be at least 1 (torch order: (C, H, W))")
    return shape

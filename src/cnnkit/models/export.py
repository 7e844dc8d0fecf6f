"""Export a model for deployment: ONNX (for ONNX Runtime and friends) or TorchScript (for libtorch).

    model = create_model("resnet18")
    export_model(model, "resnet18.onnx", "onnx")            # batch size stays free in the file
    export_model(model, "resnet18.pt", "torchscript")

ONNX goes through torch's TorchScript-based exporter (`dynamo=False`): the newer torch.export-based one needs
the `onnxscript` package, which cnnkit does not require. The file is written atomically, and the cnnkit
metadata of a checkpoint (classes, mean, std, input size) travels inside it: ONNX `metadata_props["cnnkit"]`,
TorchScript extra file `cnnkit.json`.
"""

from __future__ import annotations

import io
import json
import os
import warnings
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from cnnkit.errors import CnnkitError, InputError
from cnnkit.io import atomic_write
from cnnkit.models.probe import forward_error

__all__ = ["FORMATS", "OnnxMissingError", "check_export", "export_model", "load_torchscript", "onnx_session"]

FORMATS = ("onnx", "torchscript")
INPUT_NAME = "images"
OUTPUT_NAME = "logits"
ONNX_HINT = "install cnnkit[onnx] (pip install 'cnnkit[onnx]') for ONNX export and ONNX Runtime"


class OnnxMissingError(CnnkitError):
    """onnx or onnxruntime is not installed (they are an optional extra)."""


def export_model(model: nn.Module, path: str | os.PathLike, fmt: str = "onnx", *,
                 input_shape: tuple[int, int, int] | None = None, meta: dict[str, Any] | None = None,
                 opset: int = 17) -> Path:
    """Write `model` (in eval mode) as an ONNX or TorchScript file, atomically.

    Args:
        model: the model to export; it is put in eval mode.
        path: the file to write (.onnx, .pt).
        fmt: "onnx" or "torchscript".
        input_shape: (C, H, W) of one example input; default: the model's `default_input_size`. The batch size
            is free in the ONNX file; TorchScript traces shape-generic convolution code anyway.
        meta: JSON-ready metadata stored in the file (classes, mean, std ...).
        opset: ONNX opset version.

    Returns:
        The path written.

    Raises:
        InputError: an unknown format, no input shape, or a model whose class says `not_exportable` (why).
        OnnxMissingError: ONNX asked and the onnx package is missing.
    """
    if fmt not in FORMATS:
        raise InputError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if fmt == "onnx":
        from torch.onnx._constants import ONNX_MAX_OPSET, ONNX_MIN_OPSET

        if not ONNX_MIN_OPSET <= opset <= ONNX_MAX_OPSET:
            raise InputError(f"ONNX opset {opset} is not supported by this torch: choose {ONNX_MIN_OPSET} to "
                             f"{ONNX_MAX_OPSET} (--opset 17 suits most runtimes)")
    why_not = getattr(model, "not_exportable", None)  # a family that the tracer cannot follow says why
    if why_not:
        raise InputError(f"{type(model).__name__} cannot be exported to {fmt}: {why_not}")
    model = model.eval()
    x = example_input(model, input_shape)
    _check_runs(model, x)
    data = _onnx_bytes(model, x, meta, opset) if fmt == "onnx" else _torchscript_bytes(model, x, meta)
    target = Path(path)
    with atomic_write(target) as f:
        f.write(data)
    return target


def _check_runs(model: nn.Module, x: torch.Tensor) -> None:
    """Run the model once eagerly, so that an input it cannot take is one line, not a tracer's IR dump."""
    error = forward_error(model, x)
    if error is not None:
        c, h, w = x.shape[1:]
        own = getattr(model, "default_input_size", None)
        hint = f"; try its own size, --size {own[1]}" if own else ""
        raise InputError(f"{type(model).__name__} cannot take a {h}x{w} input with {c} channels ({error[:160]}){hint}")


def example_input(model: nn.Module, input_shape: tuple[int, int, int] | None = None, batch: int = 1) -> torch.Tensor:
    """A random batch of the model's input shape (a private generator: the caller's random stream is untouched)."""
    shape = input_shape or getattr(model, "default_input_size", None)
    if shape is None:
        raise InputError(f"{type(model).__name__} has no default input size; give one, e.g. --size 224")
    gen = torch.Generator().manual_seed(0)
    return torch.randn((batch, *shape), generator=gen)


def _onnx_bytes(model: nn.Module, x: torch.Tensor, meta: dict[str, Any] | None, opset: int) -> bytes:
    try:
        import onnx
    except ImportError:
        raise OnnxMissingError(f"ONNX export needs the onnx package: {ONNX_HINT}") from None
    buf = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter announces its deprecation on every call
        torch.onnx.export(model, (x,), buf, dynamo=False, opset_version=opset, input_names=[INPUT_NAME],
                          output_names=[OUTPUT_NAME],
                          dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}})
    proto = onnx.load_from_string(buf.getvalue())
    if meta:
        entry = proto.metadata_props.add()
        entry.key, entry.value = "cnnkit", json.dumps(meta)
    proto.producer_name = "cnnkit"
    return proto.SerializeToString()


def _torchscript_bytes(model: nn.Module, x: torch.Tensor, meta: dict[str, Any] | None) -> bytes:
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        traced = torch.jit.trace(model, x, check_trace=False)
    buf = io.BytesIO()
    torch.jit.save(traced, buf, _extra_files={"cnnkit.json": json.dumps(meta or {})})
    return buf.getvalue()


def onnx_session(source: str | os.PathLike | bytes, threads: int | None = None):
    """An ONNX Runtime CPU session on a file (or its bytes), with `threads` intra-op threads (default: torch's)."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise OnnxMissingError(f"ONNX Runtime is not installed: {ONNX_HINT}") from None
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or torch.get_num_threads()
    options.log_severity_level = 3  # errors only
    model = source if isinstance(source, bytes) else str(source)
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def load_torchscript(path: str | os.PathLike) -> tuple[torch.jit.ScriptModule, dict[str, Any]]:
    """A TorchScript file written by `export_model` and its cnnkit metadata."""
    extra = {"cnnkit.json": ""}
    module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    return module, json.loads(extra["cnnkit.json"] or "{}")


def check_export(model: nn.Module, path: str | os.PathLike, fmt: str, x: torch.Tensor) -> float:
    """Run the exported file on `x` (ONNX Runtime or torch.jit.load) and return its relative error against
    `model(x)`: max |exported - model| / max |model|."""
    with torch.no_grad():
        want = model.eval()(x)
    if fmt == "onnx":
        session = onnx_session(path)
        got = torch.from_numpy(session.run(None, {INPUT_NAME: x.numpy()})[0])
    else:
        module, _ = load_torchscript(path)
        with torch.no_grad():
            got = module(x)
    return ((got - want).abs().max() / want.abs().max().clamp_min(1e-12)).item()

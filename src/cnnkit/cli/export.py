"""`cnnkit export SOURCE --format onnx|torchscript -o FILE`: a model file for deployment, checked after writing."""

from __future__ import annotations

import sys

from cnnkit.cli.common import positive_int


def register(subparsers) -> None:
    p = subparsers.add_parser("export", help="export a model to ONNX or TorchScript (checked against PyTorch)")
    p.add_argument("source", help="registered model name (e.g. resnet18) or cnnkit model file")
    p.add_argument("--format", choices=("onnx", "torchscript"), default="onnx", dest="fmt")
    p.add_argument("-o", "--output", help="file to write (default: SOURCE name + .onnx / .pt)")
    p.add_argument("--weights", help="weights to load into a named model (.pth, .safetensors); default random")
    p.add_argument("--num-classes", type=positive_int, help="classes of a named model")
    p.add_argument("--size", type=positive_int, help="input height and width (default: the model's own)")
    p.add_argument("--opset", type=positive_int, default=17, help="ONNX opset (default 17)")
    p.add_argument("--no-check", action="store_true", help="skip running the exported file against PyTorch")
    p.set_defaults(func=run)


def run(args) -> int:
    from pathlib import Path

    from cnnkit.checkpoint import load_source
    from cnnkit.models.export import check_export, example_input, export_model

    model, meta = load_source(args.source, weights=args.weights, num_classes=args.num_classes)
    if hasattr(model, "export_module"):  # a detector: the network plus its box decoding (NMS stays outside)
        model = model.export_module()
    shape = _input_shape(model, meta, args.size)
    meta = {**meta, "input_size": list(shape)}
    out = Path(args.output or f"{Path(args.source).stem}.{'onnx' if args.fmt == 'onnx' else 'pt'}")
    export_model(model, out, args.fmt, input_shape=shape, meta=meta, opset=args.opset)
    size_mb = out.stat().st_size / 1e6
    if args.no_check:
        print(f"wrote {out} ({size_mb:.1f} MB)")
        return 0
    err = check_export(model, out, args.fmt, example_input(model, shape, batch=2))
    runner = "ONNX Runtime" if args.fmt == "onnx" else "torch.jit.load"
    print(f"wrote {out} ({size_mb:.1f} MB); {runner} on it matches PyTorch: max relative error {err:.1e}")
    if err > 1e-3:
        print(f"cnnkit export: error: {out} differs from the PyTorch model (relative error {err:.1e})",
              file=sys.stderr)
        return 1
    return 0


def _input_shape(model, meta: dict, size: int | None) -> tuple[int, int, int]:
    from cnnkit.errors import InputError

    c, h, w = meta.get("input_size") or getattr(model, "default_input_size", None) or (None, None, None)
    if c is None:
        raise InputError("the model has no default input size; give --size")
    return (int(c), size, size) if size else (int(c), int(h), int(w))

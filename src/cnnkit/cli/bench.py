"""`cnnkit bench MODEL`: images per second of the plain model, the prepared model (fp32, bf16) and ONNX Runtime,
with the FLOP/s achieved against this CPU's measured peak."""

from __future__ import annotations

import json
import sys

from cnnkit.cli.common import positive_int


def register(subparsers) -> None:
    p = subparsers.add_parser("bench", help="measure inference speed: plain, prepared (fp32/bf16), ONNX Runtime")
    p.add_argument("model", help="registered model name (e.g. resnet50) or cnnkit model file")
    p.add_argument("--batch", type=positive_int, default=8, help="images per batch (default 8)")
    p.add_argument("--size", type=positive_int, help="input height and width (default: the model's own)")
    p.add_argument("--rounds", type=positive_int, default=5, help="timed batches per variant (default 5)")
    p.add_argument("--threads", type=positive_int, help="intra-op threads (default: torch's, all cores)")
    p.add_argument("--variants", default="eager,fp32,bf16,onnx",
                   help="comma-separated, from eager,fp32,bf16,onnx,jit,folded (default: eager,fp32,bf16,onnx)")
    p.add_argument("--max-seconds", type=float, default=60.0,
                   help="stop timing a variant after this many seconds of batches (default 60)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=run)


def run(args) -> int:
    import torch

    from cnnkit.checkpoint import load_source
    from cnnkit.errors import InputError
    from cnnkit.models.export import ONNX_HINT
    from cnnkit.models.inference import VARIANTS, benchmark

    variants = tuple(v.strip() for v in args.variants.split(",") if v.strip())
    bad = [v for v in variants if v not in VARIANTS]
    if bad or not variants:
        raise InputError(f"unknown variant(s) {', '.join(bad) or '(none given)'}; choose from {', '.join(VARIANTS)}")
    if "onnx" in variants and not _onnx_installed():
        print(f"cnnkit bench: ONNX Runtime not benchmarked: {ONNX_HINT}", file=sys.stderr)
        variants = tuple(v for v in variants if v != "onnx")
    if args.threads:
        torch.set_num_threads(args.threads)
    model, meta = load_source(args.model)
    shape = None
    if args.size or meta.get("input_size"):
        c = (meta.get("input_size") or model.default_input_size)[0]
        h, w = (args.size, args.size) if args.size else meta["input_size"][1:]
        shape = (int(c), int(h), int(w))
    result = benchmark(model, name=meta.get("model", args.model), batch=args.batch, input_shape=shape,
                       variants=variants, rounds=args.rounds, max_seconds=args.max_seconds, progress=not args.json)
    print(json.dumps(result.to_dict(), indent=2) if args.json else result.to_text())
    return 0


def _onnx_installed() -> bool:
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True

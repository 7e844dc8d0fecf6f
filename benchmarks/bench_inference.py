"""Inference speed on this CPU: the plain model against the prepared one (fp32, bf16) and ONNX Runtime.

Everything is measured in the same run, in interleaved rounds (so that load from other processes hits all
variants alike), and reported as images/s, achieved FLOP/s against a fp32 matmul peak measured in the same run,
and ratios. Targets from the issue, for resnet50 at batch 8: prepared fp32 >= 3x plain eager, >= 1.5x ONNX
Runtime.

    .venv/bin/python benchmarks/bench_inference.py                      # resnet50, batch 8, 224x224
    .venv/bin/python benchmarks/bench_inference.py --models resnet18 mobilenet_v2 --batch 4 --rounds 8
    .venv/bin/python benchmarks/bench_inference.py --no-bf16            # skip bf16 (slow without AVX-512)
"""

from __future__ import annotations

import argparse
import json
import platform

import torch

from cnnkit.models import create_model
from cnnkit.models.inference import benchmark


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=["resnet50"])
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--no-bf16", action="store_true")
    p.add_argument("--json", help="also write the results to this JSON file")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    variants = ("eager", "folded", "jit", "fp32") + (() if args.no_bf16 else ("bf16",)) + ("onnx",)
    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, "
          f"{torch.get_num_threads()} threads, {torch.backends.cpu.get_cpu_capability()}")
    results = []
    for name in args.models:
        model = create_model(name)
        c = getattr(model, "default_input_size", (3, 224, 224))[0]
        result = benchmark(model, name=name, batch=args.batch, input_shape=(c, args.size, args.size),
                           variants=variants, rounds=args.rounds)
        print()
        print(result.to_text())
        results.append(result.to_dict())
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()

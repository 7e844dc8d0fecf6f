"""Sliding windows: the naive loop against the convolutional form (OverFeat) on a 128x128 image, 32x32 windows
at stride 4 (625 windows), same classifier (`window_net32`), same outputs (checked), one run.

    .venv/bin/python benchmarks/bench_sliding_window.py [--size 128] [--rounds 7] [--threads 1]

Three ways: "naive, one at a time" (the textbook loop: crop, classify, next), "naive, batched" (all crops in
batches of 256: the fair baseline, it already removes Python's per-call overhead), and "convolutional" (one pass).
The median of `rounds` timings counts, the variants alternating so that a busy machine slows all of them alike.
Target of issue 10: convolutional >= 20x faster than naive.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from cnnkit.detect.sliding_window import (  # noqa: E402
    convolutional_sliding_window,
    naive_sliding_window,
    network_stride,
    to_convolutional,
    window_net32,
)
from cnnkit.machine import cpu_name  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    net = window_net32().eval()
    conv = to_convolutional(net).eval()
    stride = network_stride(net.features)
    image = torch.rand(3, args.size, args.size)
    variants = {
        "naive, one at a time": lambda: naive_sliding_window(net, image, window=32, stride=stride, batch_size=1),
        "naive, batched (256)": lambda: naive_sliding_window(net, image, window=32, stride=stride, batch_size=256),
        "convolutional": lambda: convolutional_sliding_window(conv, image, window=32, stride=stride),
    }
    ref = variants["naive, batched (256)"]()[0]
    for fn in variants.values():
        fn()  # warm-up
        torch.testing.assert_close(fn()[0], ref, rtol=1e-4, atol=1e-4)
    times = {k: [] for k in variants}
    for _ in range(args.rounds):
        for name, fn in variants.items():
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    med = {k: statistics.median(v) for k, v in times.items()}
    n = ref.shape[0] * ref.shape[1]
    print(f"{cpu_name()}, torch {torch.__version__}, {torch.get_num_threads()} thread(s); "
          f"{args.size}x{args.size} image, 32x32 windows at stride {stride}: {n} windows; outputs equal (rtol 1e-4)")
    conv_t = med["convolutional"]
    for name, t in med.items():
        print(f"  {name:<22} {t * 1000:9.2f} ms   convolutional is {t / conv_t:6.1f}x faster")


if __name__ == "__main__":
    main()

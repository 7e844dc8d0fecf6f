"""Style transfer speed and memory: time per step at 256, 512 and 1024 pixels, memory format and precision,
and the extrapolated time of the issue's two targets.

    nice -n 10 .venv/bin/python benchmarks/bench_style.py [--threads 2] [--steps 6] [--skip-1024]

Each configuration runs in its own process (so its peak memory is its own): a few warm-up steps, then `--steps`
timed Adam steps of `cnnkit.style.transfer` with the default network (HED's VGG-16) and layers. Reported per step:
wall time and process CPU time (on a shared machine the CPU time divided by the threads is the better guess of
the wall time on two free cores), and peak resident memory. The reference is the plain configuration (NCHW, fp32,
whole image) measured in the same run; other rows print their ratio to it.

Targets (issue 13): 256x256, 300 steps in under 2 minutes on 2 cores; 1024x1024 by coarse-to-fine in under
15 minutes (256: 300 steps, 512: 150, 1024: 75 tiled).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys

CONFIGS = {
    # name: (size, StyleConfig overrides)
    "256 NCHW fp32 (reference)": (256, {"channels_last": False, "bf16": False}),
    "256 channels-last fp32": (256, {"channels_last": True, "bf16": False}),
    "256 NCHW bf16": (256, {"bf16": True}),
    "256 channels-last bf16": (256, {"channels_last": True, "bf16": True}),
    "512 bf16": (512, {"bf16": True}),
    "1024 whole image bf16": (1024, {"bf16": True, "tile": 4096}),
    "1024 tiled bf16 (512 tiles)": (1024, {"bf16": True, "tile": 512}),
}


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def worker(size: int, overrides: dict, threads: int, steps: int, warmup: int) -> dict:
    import resource
    import time

    import numpy as np
    import skimage.data
    import torch

    from cnnkit.style.styles import swirl_painting
    from cnnkit.style.transfer import StyleConfig, style_transfer

    torch.set_num_threads(threads)
    content = skimage.data.astronaut()
    content = np.asarray(
        __import__("PIL.Image", fromlist=["Image"]).fromarray(content).resize((size, size)))
    style = swirl_painting(min(size, 512), seed=0)
    times: list[tuple[float, float]] = []
    last = [time.perf_counter(), time.process_time()]

    def tick(step, parts):
        now = [time.perf_counter(), time.process_time()]
        times.append((now[0] - last[0], now[1] - last[1]))
        last[:] = now

    cfg = StyleConfig(size=size, steps=warmup + steps, max_single_scale=size, **overrides)
    last[:] = [time.perf_counter(), time.process_time()]
    style_transfer(content, [style], cfg, progress=tick)
    timed = times[warmup:]
    wall = sorted(t[0] for t in timed)[len(timed) // 2]
    cpu = sorted(t[1] for t in timed)[len(timed) // 2]
    return {"wall": wall, "cpu": cpu, "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=6, help="timed steps per configuration (median reported)")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--skip-1024", action="store_true")
    ap.add_argument("--only", default=None, help="run only configurations whose name contains this")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        size, overrides = json.loads(args.worker)
        print(json.dumps(worker(size, overrides, args.threads, args.steps, args.warmup)))
        return
    print(f"CPU: {cpu_name()}; {os.cpu_count()} logical CPUs, torch threads {args.threads}; "
          f"load average {os.getloadavg()[0]:.1f}")
    results = {}
    for name, (size, overrides) in CONFIGS.items():
        if (args.skip_1024 and size == 1024) or (args.only and args.only not in name):
            continue
        cmd = [sys.executable, __file__, "--worker", json.dumps([size, overrides]), "--threads", str(args.threads),
               "--steps", str(args.steps), "--warmup", str(args.warmup)]
        out = subprocess.run(cmd, capture_output=True, text=True)
        if out.returncode != 0:
            print(f"{name}: failed: {out.stderr.strip().splitlines()[-1] if out.stderr.strip() else out.returncode}")
            continue
        results[name] = json.loads(out.stdout.strip().splitlines()[-1])
        r = results[name]
        print(f"{name:28s} wall {r['wall']:.3f} s/step  cpu {r['cpu']:.3f} s/step  "
              f"(cpu/threads {r['cpu'] / args.threads:.3f})  peak {r['peak_mb']:.0f} MB", flush=True)
    ref = results.get("256 NCHW fp32 (reference)")
    if ref:
        print("\nratios to the reference (wall; cpu):")
        for name, r in results.items():
            if name.startswith("256"):
                print(f"  {name:28s} {r['wall'] / ref['wall']:.2f}x; {r['cpu'] / ref['cpu']:.2f}x")
    best256 = results.get("256 NCHW bf16")
    if best256:
        est = min(best256["wall"], best256["cpu"] / args.threads)
        print(f"\n256x256, 300 steps (bf16): {300 * best256['wall']:.0f} s at the measured wall time, "
              f"{300 * est:.0f} s from CPU time / threads (target: < 120 s)")
    if "512 bf16" in results and "1024 tiled bf16 (512 tiles)" in results and best256:
        parts = [(300, best256), (150, results["512 bf16"]), (75, results["1024 tiled bf16 (512 tiles)"])]
        wall = sum(n * r["wall"] for n, r in parts)
        cpu = sum(n * min(r["wall"], r["cpu"] / args.threads) for n, r in parts)
        print(f"1024x1024 coarse to fine (256: 300, 512: 150, 1024: 75 tiled steps): {wall / 60:.1f} min at the "
              f"measured wall times, {cpu / 60:.1f} min from CPU time / threads (target: < 15 min)")
        if "1024 whole image bf16" in results:
            print(f"peak memory at 1024: whole image {results['1024 whole image bf16']['peak_mb']:.0f} MB, tiled "
                  f"{results['1024 tiled bf16 (512 tiles)']['peak_mb']:.0f} MB")


if __name__ == "__main__":
    main()

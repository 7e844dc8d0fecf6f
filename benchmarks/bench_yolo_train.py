"""YOLO from scratch on the built-in scenes with cnnkit's defaults: COCO mAP on the held-out test split, and the
training time (wall and CPU), the issue-10 target being mAP@0.5 >= 0.90 and mAP@0.5:0.95 >= 0.60 within 10
minutes on 2 CPU cores.

    .venv/bin/python benchmarks/bench_yolo_train.py [--model yolo_tiny] [--threads 2] [--epochs N] [--out DIR]

It runs exactly what `cnnkit train --model yolo_tiny --data scenes --out DIR` runs (the DetectionTask's data,
augmentation, k-means anchors and training defaults, `cnnkit.train.fit`), then evaluates best.safetensors on the
test split. On a shared machine the wall time says little; the CPU time of the process (all its threads) does
not depend on the other processes, so "CPU s / threads" is printed as the estimate of the wall time on otherwise
idle cores (an upper bound on the speed-up: two threads are rarely twice as fast as one).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from bench_sliding_window import cpu_name  # noqa: E402

from cnnkit.detect.task import DetectionTask  # noqa: E402
from cnnkit.models import create_model  # noqa: E402
from cnnkit.train import TrainConfig, fit  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="yolo_tiny")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--epochs", type=int, default=None, help="default: the task's")
    p.add_argument("--out", default="/tmp/cnnkit_bench_yolo")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    task = DetectionTask()
    defaults = dict(task.train_defaults)
    if args.epochs:
        defaults["epochs"] = args.epochs
    config = TrainConfig(**defaults)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    parts = task.load_data("scenes")
    kwargs = task.model_kwargs(parts["train"])
    torch.manual_seed(0)
    model = create_model(args.model, **kwargs)
    out = Path(args.out)
    if (out / "last.state.pt").exists():
        raise SystemExit(f"{out} holds a run already; remove it or pass another --out")
    result = fit(model, parts["train"], parts["val"], config, out_dir=out, progress=False, task=task)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    from cnnkit.checkpoint import load_model_file

    best, _ = load_model_file(out / "best.safetensors")
    test = DetectionTask().evaluate(best, parts["test"], batch_size=64)
    per_epoch = [row["seconds"] for row in result.history]
    print(f"{cpu_name()}, torch {torch.__version__}, {args.threads} threads; {args.model}, "
          f"{len(parts['train'])} train scenes, config {json.dumps(defaults)}")
    median = sorted(per_epoch)[len(per_epoch) // 2]
    print(f"training + data: wall {wall:.0f} s, CPU {cpu:.0f} s -> about {cpu / args.threads / 60:.1f} min on "
          f"{args.threads} idle cores; epochs {len(per_epoch)}, median epoch wall {median:.1f} s")
    print(test.get("summary", ""))
    print(f"test mAP@0.5:0.95 {test['map']:.3f} (target 0.60), mAP@0.5 {test['map50']:.3f} (target 0.90)")


if __name__ == "__main__":
    main()

"""The detector comparison (issue 11): sliding windows, R-CNN, Fast R-CNN, Faster R-CNN and YOLO trained on the
same built-in scenes, measured on the same held-out ones: mAP@0.5, mAP@0.5:0.95, time per image (batch of one,
proposals included; median over --n-time scenes) and training time; the table, the ratios of time per image
against YOLO, and a plot. With --faster-target, instead: Faster R-CNN trained exactly as
`cnnkit train --model faster_rcnn_darknet_tiny --data scenes` (the rcnn task's defaults), test mAP, wall and CPU
time (CPU s / threads estimates the wall time on idle cores; the target is mAP@0.5 >= 0.90 within 15 minutes).

    .venv/bin/python benchmarks/bench_detectors.py [--threads 1] [--n-train 400] [--n-test 100] [--out DIR]
    .venv/bin/python benchmarks/bench_detectors.py --faster-target [--threads 2] [--epochs N] [--out DIR]
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


def faster_target(args) -> None:
    from cnnkit.checkpoint import load_model_file
    from cnnkit.models import create_model
    from cnnkit.tasks import task_for_model
    from cnnkit.train import TrainConfig, fit

    torch.manual_seed(0)
    task = task_for_model(create_model(args.model, num_classes=5))
    defaults = dict(task.train_defaults)
    if args.epochs:
        defaults["epochs"] = args.epochs
    cpu0, wall0 = time.process_time(), time.perf_counter()
    parts = task.load_data("scenes")
    model = create_model(args.model, **task.model_kwargs(parts["train"]))
    out = Path(args.out)
    if (out / "last.state.pt").exists():
        raise SystemExit(f"{out} holds a run already; remove it or pass another --out")
    result = fit(model, parts["train"], parts["val"], TrainConfig(**defaults), out_dir=out, progress=False,
                 task=task)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    best, _ = load_model_file(out / "best.safetensors")
    test = task_for_model(best).evaluate(best, parts["test"], batch_size=64)
    print(f"{cpu_name()}, torch {torch.__version__}, {args.threads} threads; {args.model}, "
          f"{len(parts['train'])} train scenes, config {json.dumps(defaults)}")
    print(f"training + data: wall {wall:.0f} s, CPU {cpu:.0f} s -> about {cpu / args.threads / 60:.1f} min on "
          f"{args.threads} idle cores; epochs {len(result.history)}")
    print(test.get("summary", ""))
    print(f"test mAP@0.5 {test['map50']:.3f} (target 0.90), mAP@0.5:0.95 {test['map']:.3f}")


def comparison(args) -> None:
    from cnnkit.detect.rcnn.compare import Budget, compare, ordered, plot, ratios, table
    from cnnkit.io import save_figure

    budget = Budget(n_train=args.n_train, n_test=args.n_test, n_time=args.n_time)
    if args.epochs:
        budget.epochs = {k: args.epochs for k in budget.epochs}
    print(f"{cpu_name()}, torch {torch.__version__}, {args.threads} threads; {budget}")
    results, _ = compare(budget, seed=args.seed)
    rows, headers = table(results)
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows, strict=True)]
    for row in [headers, *rows]:
        print("  ".join(str(x).rjust(w) for x, w in zip(row, widths, strict=True)))
    r = ratios(results)
    print("time per image vs YOLO: " + ", ".join(f"{k} {v:.1f}x" for k, v in r.items()))
    print(f"R-CNN > Fast R-CNN > Faster R-CNN > YOLO in time per image: {ordered(results)}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print("plot:", save_figure(out / "detectors.png", plot(results)))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--faster-target", action="store_true", help="train Faster R-CNN with cnnkit train's defaults")
    p.add_argument("--model", default="faster_rcnn_darknet_tiny")
    p.add_argument("--threads", type=int, default=None, help="default: 1 (comparison), 2 (--faster-target)")
    p.add_argument("--epochs", type=int, default=None, help="override every detector's epochs")
    p.add_argument("--n-train", type=int, default=400)
    p.add_argument("--n-test", type=int, default=100)
    p.add_argument("--n-time", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="/tmp/cnnkit_bench_detectors")
    args = p.parse_args()
    args.threads = args.threads or (2 if args.faster_target else 1)
    torch.set_num_threads(args.threads)
    (faster_target if args.faster_target else comparison)(args)


if __name__ == "__main__":
    main()

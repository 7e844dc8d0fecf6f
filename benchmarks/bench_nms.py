"""NMS speed: cnnkit.ops.nms against OpenCV's cv2.dnn.NMSBoxes on the same boxes, with the same kept set.

Boxes imitate a detector's output before NMS: jittered copies of a number of objects (50, 10 or 200 boxes per
object, widths 20-200 px in a 1000 x 1000 image), plus boxes spread uniformly (per object 0), uniform random
scores, IoU threshold 0.5. cnnkit is given
float32 torch tensors (boxes xyxy) and returns a tensor; OpenCV is given NumPy arrays (boxes xywh) as its users
call it, score threshold 0 (every score is above it). Both on one thread, timed in alternating rounds; the
median round counts, so a busy machine slows both alike. Every case first checks the kept sets are equal.
A ratio above 1 means cnnkit is faster.

    .venv/bin/python benchmarks/bench_nms.py [--sizes 1000,10000] [--rounds 7] [--seconds 0.2]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from cnnkit.machine import cpu_name  # noqa: E402
from cnnkit.ops import nms  # noqa: E402


def make_boxes(n: int, boxes_per_object: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """n float32 xyxy boxes clustered around n / boxes_per_object objects (0: uniform, 10-100 px), and scores."""
    rng = np.random.default_rng(seed)
    if boxes_per_object == 0:  # no clusters: boxes anywhere, most of them kept
        xy = rng.uniform(0, 1000, (n, 2))
        boxes = np.concatenate([xy, xy + rng.uniform(10, 100, (n, 2))], 1).astype(np.float32)
        return boxes, rng.random(n).astype(np.float32)
    objects = max(1, n // boxes_per_object)
    centre = rng.uniform(50, 950, (objects, 2))
    size = rng.uniform(20, 200, (objects, 2))
    k = rng.integers(0, objects, n)
    cxcy = centre[k] + rng.normal(0, 0.15, (n, 2)) * size[k]
    wh = size[k] * rng.uniform(0.7, 1.3, (n, 2))
    boxes = np.concatenate([cxcy - wh / 2, cxcy + wh / 2], 1).astype(np.float32)
    return boxes, rng.random(n).astype(np.float32)


def time_per_call(fn, seconds: float) -> float:
    fn()
    reps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        fn()
        reps += 1
    return (time.perf_counter() - start) / reps


def main() -> None:
    import cv2

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--per-object", default="50,10,200,0", help="boxes per object (cluster sizes); 0 = uniform")
    parser.add_argument("--iou", type=float, default=0.5)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--seconds", type=float, default=0.2, help="time per measurement")
    args = parser.parse_args()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    print(f"{cpu_name()}, torch {torch.__version__}, OpenCV {cv2.__version__}, 1 thread, IoU {args.iou}")
    print(f"{'boxes':>6} {'per obj':>7} {'kept':>5} {'cnnkit ms':>10} {'cv2 ms':>8} {'ratio':>6}")
    for n in (int(s) for s in args.sizes.split(",")):
        for per in (int(s) for s in args.per_object.split(",")):
            boxes, scores = make_boxes(n, per)
            bt, st = torch.from_numpy(boxes), torch.from_numpy(scores)
            xywh = np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], 1)
            ours = nms(bt, st, args.iou).numpy()
            ref = np.asarray(cv2.dnn.NMSBoxes(xywh, scores, 0.0, args.iou)).reshape(-1)
            if not np.array_equal(ours, ref):
                raise SystemExit(f"kept sets differ at {n} boxes, {per} per object: {len(ours)} vs {len(ref)}")
            a, b = [], []
            for _ in range(args.rounds):
                a.append(time_per_call(lambda: nms(bt, st, args.iou), args.seconds))  # noqa: B023
                b.append(time_per_call(lambda: cv2.dnn.NMSBoxes(xywh, scores, 0.0, args.iou), args.seconds))  # noqa: B023
            ta, tb = statistics.median(a), statistics.median(b)
            print(f"{n:>6} {per:>7} {len(ours):>5} {ta * 1e3:>10.3f} {tb * 1e3:>8.3f} {tb / ta:>6.2f}")


if __name__ == "__main__":
    main()

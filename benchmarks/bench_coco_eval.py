"""COCO bbox evaluation speed: cnnkit against pycocotools and faster-coco-eval on the same files, in one run.

A synthetic COCO-shaped set: images 640 x 480 with 1-15 objects of 80 categories (some crowd), and a results
file with up to 100 detections per image (jittered copies of the objects, wrong classes, background boxes),
like a detector's submission. Each tool starts from the two JSON files on disk and ends with the 12 summary
numbers: pycocotools COCO() + loadRes + COCOeval evaluate/accumulate/summarize; faster-coco-eval the same with
COCOeval_faster; cnnkit json.load + evaluate_coco. Their stats are checked to agree (to 1e-6 with pycocotools).
Timed in alternating rounds (median counts), one thread. A ratio above 1 means cnnkit is faster.

    .venv/bin/python benchmarks/bench_coco_eval.py [--images 500] [--rounds 3]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from cnnkit.machine import cpu_name  # noqa: E402
from cnnkit.metrics import evaluate_coco  # noqa: E402


def make_coco(n_images: int, seed: int = 0) -> tuple[dict, list]:
    rng = np.random.default_rng(seed)
    cats = [{"id": c, "name": f"class{c}"} for c in range(1, 81)]
    images, anns, results = [], [], []
    for i in range(1, n_images + 1):
        images.append({"id": i, "width": 640, "height": 480, "file_name": f"{i:06d}.jpg"})
        objs = []
        for _ in range(int(rng.integers(1, 16))):
            s = float(np.exp(rng.uniform(np.log(8), np.log(400))))
            w, h = s * rng.uniform(0.5, 1.5), s * rng.uniform(0.5, 1.5)
            x, y = rng.uniform(0, max(1.0, 640 - w)), rng.uniform(0, max(1.0, 480 - h))
            c = int(rng.integers(1, 81))
            anns.append({"id": len(anns) + 1, "image_id": i, "category_id": c, "bbox": [x, y, w, h],
                         "area": w * h * 0.8, "iscrowd": int(rng.random() < 0.02)})
            objs.append((x, y, w, h, c))
        for _ in range(100):
            if rng.random() < 0.5:
                x, y, w, h, c = objs[int(rng.integers(len(objs)))]
                j = rng.normal(0, 0.1, 4) * np.array([w, h, w, h])
                box = [x + j[0], y + j[1], max(1.0, w + j[2]), max(1.0, h + j[3])]
                if rng.random() < 0.2:
                    c = int(rng.integers(1, 81))
            else:
                w, h = rng.uniform(5, 300, 2)
                box, c = [rng.uniform(0, 600), rng.uniform(0, 440), w, h], int(rng.integers(1, 81))
            results.append({"image_id": i, "category_id": c, "bbox": [round(float(v), 2) for v in box],
                            "score": round(float(rng.random()), 4)})
    return {"images": images, "annotations": anns, "categories": cats}, results


def run_pycocotools(gt_path, res_path):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(gt_path))
        ev = COCOeval(gt, gt.loadRes(str(res_path)), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return np.asarray(ev.stats)


def run_faster(gt_path, res_path):
    from faster_coco_eval import COCO, COCOeval_faster

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(gt_path))
        ev = COCOeval_faster(gt, gt.loadRes(str(res_path)), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return np.asarray(ev.stats[:12])


def run_cnnkit(gt_path, res_path):
    with open(gt_path) as f:
        gt = json.load(f)
    with open(res_path) as f:
        res = json.load(f)
    return evaluate_coco(gt, res).stats


def main() -> None:
    from importlib.metadata import version

    import faster_coco_eval

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    gt, res = make_coco(args.images)
    with tempfile.TemporaryDirectory() as tmp:
        gt_path, res_path = Path(tmp) / "gt.json", Path(tmp) / "res.json"
        gt_path.write_text(json.dumps(gt))
        res_path.write_text(json.dumps(res))
        tools = {"cnnkit": run_cnnkit, "pycocotools": run_pycocotools, "faster-coco-eval": run_faster}
        stats = {name: fn(gt_path, res_path) for name, fn in tools.items()}
        diff = float(np.abs(stats["cnnkit"] - stats["pycocotools"]).max())
        if diff > 1e-6:
            raise SystemExit(f"cnnkit differs from pycocotools by {diff}")
        times = {name: [] for name in tools}
        for _ in range(args.rounds):
            for name, fn in tools.items():
                start = time.perf_counter()
                fn(gt_path, res_path)
                times[name].append(time.perf_counter() - start)
    print(f"{cpu_name()}; pycocotools {version('pycocotools')}, "
          f"faster-coco-eval {faster_coco_eval.__version__}")
    diff_fce = float(np.abs(stats["faster-coco-eval"] - stats["pycocotools"]).max())
    print(f"{args.images} images, {len(gt['annotations'])} ground-truth boxes, {len(res)} detections, 80 classes; "
          f"AP {stats['cnnkit'][0]:.4f}; max |cnnkit - pycocotools| = {diff:.1e}, "
          f"max |faster-coco-eval - pycocotools| = {diff_fce:.1e}")
    ours = statistics.median(times["cnnkit"])
    for name, t in times.items():
        med = statistics.median(t)
        note = "" if name == "cnnkit" else f"   cnnkit is {med / ours:.2f}x faster"
        print(f"{name:>17}: {med:7.3f} s{note}")


if __name__ == "__main__":
    main()

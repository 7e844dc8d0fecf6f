"""Scenes and annotation files: scene generation speed, and reading COCO files against pycocotools, in one run.

    .venv/bin/python benchmarks/bench_formats.py [--scenes 1000] [--images 2000] [--rounds 3]

- scenes: `make_scene` per 128x128 scene (CPU time), against drawing one image of `cnnkit.data.builtin.make_shapes`
  (one shape, no masks or landmarks) as the yardstick of "a synthetic image".
- COCO: `read_coco` (validates every object, checks every RLE string) against `pycocotools.coco.COCO` (loads and
  indexes, checks nothing) on the same file of exported scenes; then decoding every mask, ours vs `annToMask`.
A ratio above 1 means cnnkit is faster. Rounds alternate and the median counts, so a busy machine slows both alike.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from cnnkit.data.builtin import make_shapes  # noqa: E402
from cnnkit.data.coco import read_coco  # noqa: E402
from cnnkit.data.scene_export import export_scenes  # noqa: E402
from cnnkit.data.scenes import SceneConfig, make_scene  # noqa: E402
from cnnkit.machine import cpu_name as _cpu  # noqa: E402


def _time(fn) -> float:
    t = time.process_time()
    fn()
    return time.process_time() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenes", type=int, default=1000)
    ap.add_argument("--images", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    print(f"CPU: {_cpu()}")
    cfg = SceneConfig(size=128)
    ours, ref = [], []
    for r in range(args.rounds):
        ours.append(_time(lambda r=r: [make_scene(cfg, r * args.scenes + i) for i in range(args.scenes)]))
        ref.append(_time(lambda r=r: make_shapes(max(1, args.scenes // 5), 128, seed=r)))
    o, f = statistics.median(ours), statistics.median(ref)
    print(f"scenes     {args.scenes} x 128x128: {1e3 * o / args.scenes:.2f} ms each ({args.scenes / o:.0f}/s CPU); "
          f"builtin shapes image {1e3 * f / args.scenes:.2f} ms; ratio {f / o:.2f} (scenes do more: 1-4 objects, "
          "masks, landmarks, occlusion)")

    from pycocotools.coco import COCO

    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        export_scenes(tmp, "coco", counts={"train": args.images}, config=cfg, progress=False)
        path = Path(tmp) / "annotations" / "instances_train.json"
        ours, ref, ours_m, ref_m = [], [], [], []
        got: dict = {}
        for _ in range(args.rounds):
            ours.append(_time(lambda: got.update(ann=read_coco(path, check_images=False))))
            with contextlib.redirect_stdout(io.StringIO()):  # COCO() prints its progress
                ref.append(_time(lambda: got.update(coco=COCO(str(path)))))
            ann, coco = got["ann"], got["coco"]
            ours_m.append(_time(lambda ann=ann: [img.masks() for img in ann.images]))
            ref_m.append(_time(lambda coco=coco: [coco.annToMask(a) for a in coco.dataset["annotations"]]))
        n_obj = sum(len(img.labels) for img in ann.images)
        o, f = statistics.median(ours), statistics.median(ref)
        print(f"COCO read  {args.images} images, {n_obj} objects: cnnkit {o:.3f} s, pycocotools {f:.3f} s, "
              f"ratio {f / o:.2f}")
        o, f = statistics.median(ours_m), statistics.median(ref_m)
        print(f"masks      decode all {n_obj}: cnnkit {o:.3f} s, pycocotools annToMask {f:.3f} s, ratio {f / o:.2f}")


if __name__ == "__main__":
    main()

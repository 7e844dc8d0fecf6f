"""MTCNN: cnnkit.face.mtcnn against facenet-pytorch's MTCNN (same weights) on the same photos, same run.

Photos: scikit-image's astronaut (512x512) and matplotlib's Grace Hopper (512x600). The two detectors alternate,
`--repeat` times each per photo, and the median time counts, so a busy machine slows both alike. Printed: the
CPU, median milliseconds of each, the ratio (facenet-pytorch / cnnkit: above 1 means cnnkit is faster), and
the largest box and landmark difference in pixels. facenet-pytorch imports torchvision, whose compiled ops do
not load here: tests/face/facenet_shim.py gives it `batched_nms` from cnnkit.ops (for this comparison only).

    .venv/bin/python benchmarks/bench_mtcnn.py [--repeat 5] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from cnnkit.machine import cpu_name  # noqa: E402

sys.path.insert(0, str(ROOT / "tests" / "face"))

from facenet_shim import load_facenet_mtcnn  # noqa: E402

from cnnkit.face.mtcnn import MTCNN  # noqa: E402


def photos() -> dict[str, np.ndarray]:
    import matplotlib.cbook
    import skimage.data
    from PIL import Image

    with Image.open(matplotlib.cbook.get_sample_data("grace_hopper.jpg")) as im:
        grace = np.asarray(im.convert("RGB"))
    return {"astronaut": skimage.data.astronaut(), "grace_hopper": grace}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    ref_cls = load_facenet_mtcnn()
    if ref_cls is None:
        sys.exit("facenet-pytorch is not installed: pip install --no-deps facenet-pytorch==2.6.0")
    from PIL import Image

    ref, ours = ref_cls(keep_all=True, device="cpu"), MTCNN()
    print(f"{cpu_name()}; torch {torch.__version__}; {args.threads} thread(s); median of {args.repeat}")
    for name, img in photos().items():
        pil = Image.fromarray(img)
        t_ref, t_ours = [], []
        for _ in range(args.repeat + 1):  # the first round warms up and is dropped
            t0 = time.perf_counter()
            boxes, _, points = ref.detect(pil, landmarks=True)
            t_ref.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            det = ours.detect(img)
            t_ours.append(time.perf_counter() - t0)
        r, o = statistics.median(t_ref[1:]), statistics.median(t_ours[1:])
        db = np.abs(det.boxes - boxes).max() if len(det) == len(boxes) else float("nan")
        dl = np.abs(det.landmarks - points).max() if len(det) == len(points) else float("nan")
        print(f"{name:<13} facenet-pytorch {r * 1e3:7.1f} ms   cnnkit {o * 1e3:7.1f} ms   ratio {r / o:5.2f}x   "
              f"faces {len(det)}/{len(boxes)}, max difference: boxes {db:.2g} px, landmarks {dl:.2g} px")


if __name__ == "__main__":
    main()

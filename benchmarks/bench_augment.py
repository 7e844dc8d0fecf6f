"""Augmentation speed: cnnkit against albumentations on the same operations, images/s, ratios from one run.

Both libraries are timed on uint8 images (what data sets decode: cnnkit's image data sets augment uint8
(3, H, W) tensors with OpenCV's 8-bit kernels, albumentations takes (H, W, 3) arrays) and on float32 images
(cnnkit: (3, H, W) tensors in [0, 1]; albumentations: (H, W, 3) arrays). Both run on one thread
(torch.set_num_threads(1), cv2.setNumThreads(1)): data loaders parallelise across worker processes, not
inside one image. The two libraries are timed in alternating rounds and the median round counts, so a busy
machine slows both alike. A ratio above 1 means cnnkit is faster.

    .venv/bin/python benchmarks/bench_augment.py [--size 224] [--rounds 5] [--seconds 0.15] [--only rotate,pca]

Not identical algorithms everywhere: albumentations' FancyPCA computes the PCA of each image on every call
(cnnkit uses statistics fitted once on the data set, as AlexNet did), and its ElasticTransform blurs full-size
noise with a Gaussian (cnnkit upsamples a coarse random grid bicubically); both are listed for completeness.
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

from cnnkit.augment import RandomCrop, Sample, build_transform  # noqa: E402


def _cases(size: int):
    """(name, cnnkit transform, albumentations transform factory, with_targets) for every compared operation."""
    import albumentations as A
    import cv2

    const = cv2.BORDER_CONSTANT
    pad = size // 8

    def ours(spec):
        return build_transform(spec, image_size=size, seed=0)

    pipeline = [
        lambda: A.RandomResizedCrop(size=(size, size), scale=(0.35, 1.0), p=1.0),
        lambda: A.HorizontalFlip(p=0.5),
        lambda: A.Affine(rotate=(-10, 10), translate_percent=(-0.1, 0.1), scale=(0.9, 1.1), shear=(-5, 5),
                         border_mode=const, p=1.0),
        lambda: A.RGBShift(r_shift_limit=0.1, g_shift_limit=0.1, b_shift_limit=0.1, p=1.0),
    ]
    return [
        ("hflip", ours("flip=1"), lambda: A.HorizontalFlip(p=1.0), False),
        (f"random crop {size}->{size * 6 // 7}", RandomCrop(size * 6 // 7),
         lambda: A.RandomCrop(size * 6 // 7, size * 6 // 7, p=1.0), False),
        (f"pad {pad} + random crop", ours("crop"),
         lambda: A.Compose([A.PadIfNeeded(size + 2 * pad, size + 2 * pad, border_mode=const, fill=0),
                            A.RandomCrop(size, size)]), False),
        ("random resized crop", ours("resized_crop"),
         lambda: A.RandomResizedCrop(size=(size, size), scale=(0.35, 1.0), p=1.0), False),
        ("rotate +-15", ours("rotate"), lambda: A.Affine(rotate=(-15, 15), border_mode=const, p=1.0), False),
        ("shear +-10", ours("shear"), lambda: A.Affine(shear={"x": (-10, 10), "y": (0, 0)}, border_mode=const, p=1.0),
         False),
        ("translate +-10%", ours("translate"),
         lambda: A.Affine(translate_percent=(-0.1, 0.1), border_mode=const, p=1.0), False),
        ("scale 0.85-1.15", ours("scale"), lambda: A.Affine(scale=(0.85, 1.15), border_mode=const, p=1.0), False),
        ("affine (all four)", ours("affine"), pipeline[2], False),
        ("elastic warp", ours("elastic"), lambda: A.ElasticTransform(alpha=120, sigma=12, p=1.0), False),
        ("colour shift", ours("color"), pipeline[3], False),
        ("PCA colour (see note)", ours("pca"), lambda: A.FancyPCA(alpha=0.1, p=1.0), False),
        ("pipeline rrc,flip,affine,colour", ours("resized_crop,flip,affine,color"),
         lambda: A.Compose([f() for f in pipeline]), False),
        ("  same + 1 box + 5 landmarks", ours("resized_crop,flip,affine,color"),
         lambda: A.Compose([f() for f in pipeline],
                           bbox_params=A.BboxParams(format="pascal_voc", label_fields=["labels"]),
                           keypoint_params=A.KeypointParams(format="xy", remove_invisible=False)), True),
    ]


def _rate(fn, seconds: float, calls: int | None = None) -> tuple[float, int]:
    """Images per second of `fn` over about `seconds` (or exactly `calls` calls)."""
    if calls is None:
        calls, elapsed = 1, 0.0
        while elapsed < seconds / 4:  # calibrate the number of calls per round
            start = time.perf_counter()
            for _ in range(calls):
                fn()
            elapsed = time.perf_counter() - start
            calls *= 2
        calls = max(1, int(calls / 2 * seconds / max(elapsed, 1e-9)))
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return calls / (time.perf_counter() - start), calls


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--rounds", type=int, default=5, help="alternating timing rounds per operation (median kept)")
    p.add_argument("--seconds", type=float, default=0.15, help="length of one round of one library")
    p.add_argument("--only", default="", help="comma-separated substrings of case names to run")
    args = p.parse_args(argv)

    try:
        import albumentations as A
        import cv2
    except ImportError:
        print("albumentations is not installed (pip install -e '.[bench]'); nothing to compare against")
        return 0
    torch.set_num_threads(1)
    cv2.setNumThreads(1)

    rng = np.random.default_rng(0)
    size = args.size
    u8 = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    f32 = u8.astype(np.float32) / 255.0
    x = torch.from_numpy(f32.transpose(2, 0, 1).copy())
    x8 = torch.from_numpy(u8).permute(2, 0, 1)  # (3, H, W) view of the HWC array, as cnnkit's data sets make it
    box = [0.3 * size, 0.2 * size, 0.7 * size, 0.75 * size]
    pts = [[0.4 * size, 0.4 * size], [0.6 * size, 0.4 * size], [0.5 * size, 0.5 * size], [0.42 * size, 0.62 * size],
           [0.58 * size, 0.62 * size]]
    boxes_t, pts_t = torch.tensor([box]), torch.tensor(pts)

    from cnnkit.machine import cpu_name

    cpu = cpu_name()
    print(f"augmentation speed at {size}x{size}, one thread, on {cpu}; cnnkit (3,H,W) tensors, "
          f"albumentations {A.__version__} (OpenCV {cv2.__version__}) (H,W,3) arrays; images/s")
    header = (f"{'operation':34s} {'cnnkit u8':>10s} {'alb. u8':>9s} {'ratio':>6s} {'cnnkit f32':>11s} "
              f"{'alb. f32':>9s} {'ratio':>6s}")
    print(header)
    print("-" * len(header))
    selected = [s.strip() for s in args.only.split(",") if s.strip()]
    for name, ours, theirs_factory, with_targets in _cases(size):
        if selected and not any(s in name for s in selected):
            continue
        theirs = theirs_factory()
        if with_targets:
            def run_ours(ours=ours):
                return ours(Sample(x, boxes=boxes_t, landmarks=pts_t))

            def run_ours8(ours=ours):
                return ours(Sample(x8, boxes=boxes_t, landmarks=pts_t))

            def run_u8(theirs=theirs):
                return theirs(image=u8, bboxes=[box], labels=[1], keypoints=pts)

            def run_f32(theirs=theirs):
                return theirs(image=f32, bboxes=[box], labels=[1], keypoints=pts)
        else:
            def run_ours(ours=ours):
                return ours(x)

            def run_ours8(ours=ours):
                return ours(x8)

            def run_u8(theirs=theirs):
                return theirs(image=u8)

            def run_f32(theirs=theirs):
                return theirs(image=f32)

        fns = {"ours8": run_ours8, "u8": run_u8, "ours": run_ours, "f32": run_f32}
        calls = {}
        for key, fn in fns.items():  # warm up and calibrate each once
            for _ in range(3):
                fn()
            calls[key] = _rate(fn, args.seconds)[1]
        rates = {k: [] for k in fns}
        for _ in range(args.rounds):  # alternate, so load on a shared machine hits all three alike
            for key, fn in fns.items():
                rates[key].append(_rate(fn, args.seconds, calls[key])[0])
        med = {k: statistics.median(v) for k, v in rates.items()}
        print(f"{name:34s} {med['ours8']:10,.0f} {med['u8']:9,.0f} {med['ours8'] / med['u8']:6.2f} "
              f"{med['ours']:11,.0f} {med['f32']:9,.0f} {med['ours'] / med['f32']:6.2f}", flush=True)
    print("ratio = cnnkit images/s / albumentations images/s (above 1: cnnkit faster)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

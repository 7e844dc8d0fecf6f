"""U-Net prediction of a large image: overlapping tiles against the whole image at once, time and peak memory.

Each mode runs in its own process (peak RSS is per process): the model is built, the baseline RSS read, then the
image predicted; "extra" memory is the peak minus that baseline. Tiled prediction keeps one band of tile rows of
class probabilities, so its extra memory stays near constant as the image grows; whole-image prediction holds
every activation of the full-size image. The labels of both modes are compared (fraction of equal pixels).

    .venv/bin/python benchmarks/bench_unet.py [--size 2048] [--tile 512] [--model unet_small] [--threads 1]
                                              [--no-whole]

`--curve EPOCHS BATCH LR NTRAIN` instead trains unet_small on NTRAIN scenes of 96 px through the segmentation
task (AdamW, cosine, CE + Dice) and prints the validation mIoU of every epoch (the README's learning numbers).

Also times one training step of unet_small against unet_small_noskip and unet_course at 96x128 (the reference
in the same run: the course's U-Net), batch 8.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from cnnkit.machine import cpu_name as _cpu  # noqa: E402


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: kB


def child(mode: str, size: int, tile: int, model_name: str, threads: int, out: str) -> None:
    import numpy as np
    import torch

    from cnnkit.models import create_model
    from cnnkit.segment.tiling import predict_tiled, predict_whole

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = create_model(model_name, num_classes=6).eval()
    rng = np.random.default_rng(0)
    image = (rng.random((size, size, 3)) * 255).astype(np.uint8)
    with torch.no_grad():  # warm-up on a small image, so allocator pools are part of the baseline
        predict_whole(model, image[:64, :64])
    base = _rss_mb()
    start = time.perf_counter()
    if mode == "tiled":
        labels = predict_tiled(model, image, tile=tile, overlap=tile // 4)
    else:
        labels = predict_whole(model, image).argmax(0).numpy().astype(np.uint8)
    seconds = time.perf_counter() - start
    np.save(out, labels)
    print(json.dumps({"mode": mode, "seconds": seconds, "peak_mb": _rss_mb(), "extra_mb": _rss_mb() - base}))


def _run(mode: str, args, out: Path) -> dict:
    cmd = [sys.executable, __file__, "--child", mode, "--size", str(args.size), "--tile", str(args.tile),
           "--model", args.model, "--threads", str(args.threads), "--labels", str(out)]
    res = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def train_steps(threads: int) -> list[tuple[str, float]]:
    import torch

    from cnnkit.models import create_model
    from cnnkit.segment.losses import SegmentationLoss

    torch.set_num_threads(threads)
    loss_fn = SegmentationLoss()
    x = torch.randn(8, 3, 96, 128)
    y = torch.randint(0, 6, (8, 96, 128))
    out = []
    for name in ("unet_course", "unet_small", "unet_small_noskip"):
        model = create_model(name, num_classes=6)
        opt = torch.optim.AdamW(model.parameters(), 1e-3)
        times = []
        for i in range(4):
            t = time.perf_counter()
            loss, _ = loss_fn(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if i:
                times.append(time.perf_counter() - t)
        out.append((name, sorted(times)[len(times) // 2]))
    return out


def curve(epochs: int, batch: int, lr: float, ntrain: int, threads: int) -> None:
    import torch

    from cnnkit.models import create_model
    from cnnkit.tasks import get_task
    from cnnkit.train import TrainConfig, fit
    from cnnkit.train.callbacks import PrintEpochs

    torch.set_num_threads(threads)
    task = get_task("segmentation")
    data = task.load_data("scenes", scene_counts={"train": ntrain, "val": 300, "test": 0}, splits=["train", "val"])
    torch.manual_seed(0)
    model = create_model("unet_small", num_classes=len(data["train"].classes))
    config = TrainConfig(epochs=epochs, batch_size=batch, lr=lr, weight_decay=5e-4, schedule="cosine")
    print(f"CPU: {_cpu()}; unet_small, {ntrain} scenes, {epochs} epochs, batch {batch}, lr {lr}")
    fit(model, data["train"], data["val"], config, progress=False, task=task, callbacks=[PrintEpochs()])


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--size", type=int, default=2048)
    p.add_argument("--tile", type=int, default=512)
    p.add_argument("--model", default="unet_small")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--no-whole", action="store_true", help="skip whole-image prediction (needs GBs at 2048)")
    p.add_argument("--curve", nargs=4, default=None, metavar=("EPOCHS", "BATCH", "LR", "NTRAIN"))
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    p.add_argument("--labels", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.curve:
        curve(int(args.curve[0]), int(args.curve[1]), float(args.curve[2]), int(args.curve[3]), args.threads)
        return
    if args.child:
        child(args.child, args.size, args.tile, args.model, args.threads, args.labels)
        return
    import tempfile

    import numpy as np

    print(f"CPU: {_cpu()}; torch threads {args.threads}; {args.model} on a {args.size}x{args.size} image")
    with tempfile.TemporaryDirectory() as tmp:
        tiled = _run("tiled", args, Path(tmp) / "tiled.npy")
        print(f"  tiled ({args.tile} px, overlap {args.tile // 4}): {tiled['seconds']:.1f} s, peak RSS "
              f"{tiled['peak_mb']:.0f} MB ({tiled['extra_mb']:.0f} MB above the loaded model)")
        if not args.no_whole:
            whole = _run("whole", args, Path(tmp) / "whole.npy")
            print(f"  whole image:             {whole['seconds']:.1f} s, peak RSS {whole['peak_mb']:.0f} MB "
                  f"({whole['extra_mb']:.0f} MB above the loaded model)")
            a, b = np.load(Path(tmp) / "tiled.npy"), np.load(Path(tmp) / "whole.npy")
            print(f"  ratios whole/tiled: time {whole['seconds'] / tiled['seconds']:.2f}, extra memory "
                  f"{whole['extra_mb'] / max(tiled['extra_mb'], 1):.1f}x; labels equal on {np.mean(a == b):.4%} "
                  f"of pixels")
    steps = train_steps(args.threads)
    ref = steps[0][1]
    print("one training step, batch 8 at 96x128 (ratio: time of unet_course / time of the model):")
    for name, t in steps:
        print(f"  {name:<18} {t * 1000:7.0f} ms   {ref / t:5.2f}x")


if __name__ == "__main__":
    main()

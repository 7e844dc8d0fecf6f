"""Feature cache: time per epoch of training a new head through a frozen backbone vs on cached features.

Both runs train the same head (same seed, same data order, no augmentation) with `cnnkit.train.fit`, one
through the frozen backbone (`fit(model, images ...)`), one on the backbone's features computed once
(`fit_head_on_cache`). The epochs alternate between the two and the median epoch time of each counts, so a
busy machine slows both alike. Printed: seconds per epoch of each, their ratio (the speed-up per epoch), the
one-time cost of computing and writing the features, the number of epochs after which the cache has paid
for itself, and the largest difference between the two trained heads (should be ~1e-7: the same head).

    .venv/bin/python benchmarks/bench_feature_cache.py [--model resnet20_cifar] [--image-size 32] [--epochs 3]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from cnnkit.data import load_dataset  # noqa: E402
from cnnkit.models import create_model  # noqa: E402
from cnnkit.train import TrainConfig, fit  # noqa: E402
from cnnkit.train.feature_cache import HeadOnly, cached_features  # noqa: E402
from cnnkit.train.transfer import apply_transfer, count_trainable  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="resnet20_cifar")
    ap.add_argument("--data", default="digits", help="built-in data set (digits, shapes)")
    ap.add_argument("--image-size", type=int, default=32)
    ap.add_argument("--epochs", type=int, default=3, help="epochs timed for each of the two ways")
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    in_chans = 1 if args.data == "digits" else 3
    train = load_dataset(args.data, split="train", image_size=args.image_size, in_chans=in_chans, seed=0)
    torch.manual_seed(0)
    model = create_model(args.model, num_classes=len(train.classes), in_chans=in_chans)
    apply_transfer(model, freeze="backbone", num_classes=len(train.classes))
    through, on_cache = copy.deepcopy(model), copy.deepcopy(model)
    trainable, total = count_trainable(model)

    with tempfile.TemporaryDirectory() as cache_dir:
        start = time.perf_counter()
        feats = cached_features(on_cache, train, cache_dir, progress=False)
        build_s = time.perf_counter() - start
        start = time.perf_counter()
        again = cached_features(on_cache, train, cache_dir, progress=False)  # a later run: read, hash checked
        read_s = time.perf_counter() - start
        assert again.from_cache
        size_mb = feats.path.stat().st_size / 1e6

    # one epoch per fit call, alternating; each call continues from the weights the last one left, with the
    # same config, so both heads see the same sequence of batches
    times: dict[str, list[float]] = {"through": [], "cache": []}
    for epoch in range(args.epochs):
        cfg = TrainConfig(epochs=1, batch_size=64, optimizer="sgd", lr=0.05, schedule="none", seed=epoch)
        for name, model_i, data in (("through", through, train), ("cache", HeadOnly(on_cache), feats)):
            start = time.perf_counter()
            fit(model_i, data, None, cfg, progress=False)
            times[name].append(time.perf_counter() - start)

    t_through, t_cache = statistics.median(times["through"]), statistics.median(times["cache"])
    diff = max(float((a - b).detach().abs().max()) for a, b in zip(through.get_classifier().parameters(),
                                                            on_cache.get_classifier().parameters(), strict=True))
    print(f"{args.model} on {args.data} ({len(train)} images {in_chans}x{args.image_size}x{args.image_size}), "
          f"{trainable:,} of {total:,} parameters trained, {args.threads} thread(s)")
    print(f"  features {tuple(feats.features.shape[1:])} per image, cache file {size_mb:.1f} MB")
    print(f"  one-time: compute + hash + write the cache {build_s:.2f} s; read it back (hash checked) {read_s:.2f} s")
    print(f"  per epoch: through the frozen backbone {t_through:.3f} s, on cached features {t_cache:.4f} s")
    print(f"  speed-up per epoch: {t_through / t_cache:.1f}x; the cache pays for itself after "
          f"{build_s / max(t_through - t_cache, 1e-9):.1f} epoch(s)")
    print(f"  max |head through - head on cache| after {args.epochs} epochs: {diff:.2e}")


if __name__ == "__main__":
    main()

"""`cnnkit predict`: what a checkpoint's model sees in images, through its task (a classifier: the most likely
classes with probabilities; a detector: boxes ...), printed, as JSON, and drawn with `--out`.

    cnnkit predict runs/lenet/best.safetensors seven.png --topk 3
    cnnkit predict runs/det/best.safetensors street.jpg --out predictions/
    cnnkit predict --model efficientnet_lite0 --weights imagenet photo.jpg --topk 5   # weights a package ships
"""

from __future__ import annotations

import json

from cnnkit.cli.common import positive_int


def _option(text: str) -> tuple[str, object]:
    import argparse

    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key.replace("-", "_"), json.loads(value)
    except json.JSONDecodeError:
        return key.replace("-", "_"), value


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "predict", help="run a checkpoint on images (classes, boxes ... by the model's task)",
        description="Run a cnnkit checkpoint on image files through its task. Each image is read, converted to "
                    "the checkpoint's channels, resized to its input size and normalised with its mean/std, "
                    "exactly as the training images were. With --out, each image's result is also drawn "
                    "(OUT/NAME.png) and written as JSON (OUT/NAME.json).",
    )
    p.add_argument("checkpoint", help="cnnkit model file (.safetensors) written by `cnnkit train` (with --model: "
                                      "the first image)")
    p.add_argument("images", nargs="*", metavar="IMAGE", help="image files")
    p.add_argument("--model", default=None, help="a model with registered pretrained weights instead of a checkpoint, "
                                                 "e.g. efficientnet_lite0 (`cnnkit weights list`)")
    p.add_argument("--weights", default=None, help="with --model: which registered weights, e.g. imagenet "
                                                   "(default: the model's only ones)")
    p.add_argument("--topk", type=positive_int, default=5, help="classes to show per image (default 5)")
    p.add_argument("--conf", type=float, default=None, help="score threshold of detections (detection tasks)")
    p.add_argument("--iou", type=float, default=None, help="NMS IoU threshold (detection tasks)")
    p.add_argument("--set", type=_option, action="append", default=[], metavar="KEY=VALUE", dest="options",
                   help="another option of the task's predict (repeatable; VALUE read as JSON when it can be)")
    p.add_argument("--out", default=None, metavar="DIR", help="also write a picture and a JSON file per image")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run)


def preprocess(paths: list[str], meta: dict):
    """A classifier's input batch (N, C, H, W) from image files (`cnnkit.tasks.classification.preprocess_files`)."""
    from cnnkit.tasks.classification import preprocess_files

    return preprocess_files(paths, meta)


def run(args) -> int:
    from cnnkit.checkpoint import load_model_file
    from cnnkit.tasks import get_task

    bad: list[str] = []
    if args.model is not None:  # pretrained weights a package ships (cnnkit.models.pretrained), no checkpoint
        from cnnkit.models.pretrained import classify_images

        args.images, bad = _readable([args.checkpoint, *args.images])
        meta, predictions = classify_images(args.model, args.weights, args.images, topk=args.topk)
        task = get_task(meta["task"])
    else:
        if not args.images:
            from cnnkit.errors import InputError

            raise InputError("give a checkpoint and at least one image (or --model NAME and images)")
        model, meta = load_model_file(args.checkpoint)
        args.images, bad = _readable(args.images)
        task = get_task(meta["task"])
        task.bind(model)
        opts = {"topk": args.topk, **{k: v for k, v in (("conf", args.conf), ("iou", args.iou)) if v is not None},
                **dict(args.options)}
        predictions = task.predict_files(model, args.images, meta, **opts)
    results = [{"image": path, **r} for path, r in zip(args.images, predictions, strict=True)]
    if args.out is not None:
        _write(args.out, results, task, meta)
    if args.json:
        print(json.dumps([_json_part(r) for r in results], indent=2))
        return _report_bad(bad)
    for path, r in zip(args.images, predictions, strict=True):
        print(f"{path}: {task.describe(r)}")
    return _report_bad(bad)


def _readable(paths: list[str]) -> tuple[list[str], list[str]]:
    """The images that decode, and one line for each that does not; all unreadable: the first one's error."""
    from cnnkit.data.sources import probe_image
    from cnnkit.errors import CnnkitError
    from cnnkit.io import require_file

    good, bad, first = [], [], None
    for path in paths:
        try:
            probe_image(require_file(path))
            good.append(path)
        except CnnkitError as e:
            bad.append(str(e))
            first = first or e
    if not good and first is not None:
        raise first
    return good, bad


def _report_bad(bad: list[str]) -> int:
    """After the good images' results: each unreadable image named on its own line; exit code 2 if any."""
    import sys

    for line in bad:
        print(f"cnnkit predict: error: {line}", file=sys.stderr)
    return 2 if bad else 0


def _write(out_dir: str, results: list[dict], task, meta: dict) -> None:
    """OUT/NAME.png (the task's drawing) and OUT/NAME.json per image; a name used twice gets a -2, -3 ..."""
    from pathlib import Path

    from cnnkit.io import atomic_write, read_image, save_image

    out = Path(out_dir)
    seen: dict[str, int] = {}
    for r in results:
        stem = Path(r["image"]).stem
        seen[stem] = seen.get(stem, 0) + 1
        name = stem if seen[stem] == 1 else f"{stem}-{seen[stem]}"
        result = {k: v for k, v in r.items() if k != "image"}
        save_image(out / f"{name}.png", task.render(read_image(r["image"]), result, meta))
        if hasattr(task, "write_outputs"):  # files a task adds (segmentation: NAME_labels.png)
            task.write_outputs(out, name, result, meta)
        with atomic_write(out / f"{name}.json", "w") as f:
            json.dump(_json_part(r), f, indent=2)
            f.write("\n")


def _json_part(result: dict) -> dict:
    """The result without its arrays (a segmentation label map goes to its own PNG, not into the JSON)."""
    return {k: v for k, v in result.items() if not hasattr(v, "__array__")}

"""`cnnkit data`: write the built-in scenes to disk in a standard format, check or picture an annotated data set."""

from __future__ import annotations

import argparse

from cnnkit.cli.common import RawDefaultsFormatter, positive_int

FORMATS = ("coco", "yolo", "voc", "labelpng")


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if not 0 <= value <= 1_000_000:
        raise argparse.ArgumentTypeError(f"must be in 0..1000000, got {value}")
    return value


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "data",
        help="built-in scenes to COCO/YOLO/VOC/label PNGs; check, convert or picture an annotated data set",
        description="Work with detection and segmentation data sets.",
        formatter_class=RawDefaultsFormatter,
    )
    sub = p.add_subparsers(dest="data_command", metavar="{scenes,check,convert,show}")

    s = sub.add_parser(
        "scenes",
        help="write built-in scenes with their annotations in a standard format",
        description="Generate built-in scenes (shapes, optionally real handwritten digits) and write images plus\n"
        "annotations:\n"
        "  coco      annotations/instances_<split>.json: boxes, RLE masks and 4 keypoints\n"
        "  yolo      labels/<split>/*.txt and an ultralytics dataset.yaml\n"
        "  voc       Annotations/*.xml, ImageSets/Main/<split>.txt, classes.txt\n"
        "  labelpng  labels/<split>/*.png index masks (VOC palette), classes.txt\n"
        "Scene i of a split is the same picture for every count and format.",
        epilog="examples:\n  cnnkit data scenes --out scenes-coco --format coco --n 200\n"
        "  cnnkit data scenes --out scenes-yolo --format yolo --train 2000 --val 300 --digits\n"
        "  cnnkit data check scenes-yolo/dataset.yaml",
        formatter_class=RawDefaultsFormatter,
    )
    s.add_argument("--out", required=True, help="output folder")
    s.add_argument("--format", choices=FORMATS, default="coco", help="annotation format")
    s.add_argument("--n", type=_count, default=None, help="scenes in total, split 70/15/15 (instead of --train ...)")
    s.add_argument("--train", type=_count, default=100, help="training scenes")
    s.add_argument("--val", type=_count, default=20, help="validation scenes")
    s.add_argument("--test", type=_count, default=20, help="test scenes")
    s.add_argument("--size", type=positive_int, default=128, help="image side in pixels")
    s.add_argument("--seed", type=_count, default=0, help="seed of the scenes")
    s.add_argument("--classes", default=None, help="comma-separated classes (shapes and/or 0..9); default: shapes")
    s.add_argument("--digits", action="store_true", help="add the ten digit classes to the shapes")
    s.add_argument("--min-objects", type=_count, default=1, help="fewest objects per scene")
    s.add_argument("--max-objects", type=_count, default=4, help="most objects per scene")
    s.add_argument("--keypoints", action="store_true", help="yolo: write the 4 landmarks (a pose data set)")
    s.set_defaults(func=run_scenes)

    c = sub.add_parser(
        "check",
        help="read an annotated data set and report what is in it and what is wrong",
        description="Read a COCO / YOLO / VOC / label-PNG data set as training would, and print the images, objects "
        "and classes of each split. Bad objects and missing images are listed as warnings (skipped), or stop at "
        "the first with --strict (exit 2).",
    )
    c.add_argument("source", help="dataset.yaml, a COCO .json, a VOC folder, or a folder with images/ + labels/")
    c.add_argument("--strict", action="store_true", help="stop at the first bad annotation")
    c.add_argument("--classes", default=None, help="VOC: comma-separated class names in label order")
    c.set_defaults(func=run_check)

    k = sub.add_parser(
        "convert",
        help="convert an annotated data set between COCO, YOLO and VOC",
        description="Read a COCO / YOLO / VOC data set and write it in another format under --out, images copied.\n"
        "What the target cannot hold (masks outside COCO, keypoints in VOC) is dropped, and said so.",
        epilog="example:\n  cnnkit data convert VOCdevkit/VOC2012 --to yolo --out voc-yolo",
        formatter_class=RawDefaultsFormatter,
    )
    k.add_argument("source", help="dataset.yaml, a COCO .json or folder, or a VOC folder")
    k.add_argument("--to", required=True, choices=("coco", "yolo", "voc"), help="target format")
    k.add_argument("--out", required=True, help="output folder")
    k.add_argument("--strict", action="store_true", help="stop at the first bad annotation")
    k.add_argument("--classes", default=None, help="VOC: comma-separated class names in label order")
    k.set_defaults(func=run_convert)

    v = sub.add_parser(
        "show",
        help="draw a few images of a data set (or of the built-in scenes) with their annotations",
        description="Draw boxes with class names, masks as colour overlays and landmarks as dots on a grid of images.",
    )
    v.add_argument("source", help="'scenes', or a data set path as for `check`")
    v.add_argument("-o", "--out", default="data-show.png", help="output PNG")
    v.add_argument("--n", type=positive_int, default=8, help="images to draw")
    v.add_argument("--split", default="train", choices=("train", "val", "test"), help="which split")
    v.set_defaults(func=run_show)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def _scene_config(args):
    from cnnkit.data.scenes import DIGIT_CLASSES, SHAPE_CLASSES, SceneConfig
    from cnnkit.errors import InputError

    classes = tuple(c.strip() for c in args.classes.split(",") if c.strip()) if args.classes else SHAPE_CLASSES
    if args.digits:
        classes = tuple(dict.fromkeys(classes + DIGIT_CLASSES))
    if args.min_objects > args.max_objects:
        raise InputError(f"--min-objects {args.min_objects} is above --max-objects {args.max_objects}")
    return SceneConfig(size=args.size, classes=classes, min_objects=args.min_objects,
                       max_objects=args.max_objects, seed=args.seed)


def run_scenes(args) -> int:
    import time

    from cnnkit.data.scene_export import export_scenes

    config = _scene_config(args)
    if args.n is not None:
        n_val = n_test = int(round(0.15 * args.n))
        counts = {"train": args.n - n_val - n_test, "val": n_val, "test": n_test}
    else:
        counts = {"train": args.train, "val": args.val, "test": args.test}
    counts = {k: v for k, v in counts.items() if v}
    t = time.perf_counter()
    target = export_scenes(args.out, args.format, counts=counts, config=config,
                           keypoints=True if args.keypoints else None)
    parts = ", ".join(f"{v} {k}" for k, v in counts.items())
    print(f"wrote {sum(counts.values())} scenes ({parts}) as {args.format} to {args.out} "
          f"in {time.perf_counter() - t:.1f} s; read them with: cnnkit data check {target}")
    return 0


def run_check(args) -> int:
    import warnings

    import numpy as np

    from cnnkit.data.detection_files import detect_format, load_detection
    from cnnkit.data.sources import DataWarning

    fmt = detect_format(args.source)
    view = "semantic" if fmt == "labelpng" else "detection"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DataWarning)
        parts = load_detection(args.source, view=view, strict=args.strict, classes=_classes(args.classes))
    problems = [w for w in caught if issubclass(w.category, DataWarning)]
    for w in problems[:20]:
        print(f"warning: {w.message}")
    if len(problems) > 20:
        print(f"... and {len(problems) - 20} more warnings")
    first = next(iter(parts.values()))
    names = first.semantic_classes if view == "semantic" else first.classes
    print(f"{args.source}: {fmt}, {len(names)} classes: {', '.join(names)}")
    for split, ds in parts.items():
        if view == "semantic":
            print(f"  {split:5s} {len(ds):6d} images")
            continue
        src = ds.source
        counts = np.zeros(len(names), np.int64)
        empty = 0
        for i in src.indices:
            labels = src.ann.images[i].labels
            counts += np.bincount(labels, minlength=len(names))
            empty += len(labels) == 0
        per = ", ".join(f"{c} {n}" for c, n in zip(names, counts, strict=True))
        print(f"  {split:5s} {len(ds):6d} images ({empty} without objects), {int(counts.sum())} objects: {per}")
    print(f"{len(problems)} problem(s) skipped" if problems else "no problems found")
    return 0


def _classes(text: str | None):
    return [c.strip() for c in text.split(",") if c.strip()] if text else None


def run_convert(args) -> int:
    import warnings

    from cnnkit.data.annotation_convert import convert_annotations
    from cnnkit.data.sources import DataWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DataWarning)
        target, notes = convert_annotations(args.source, args.to, args.out, strict=args.strict,
                                            classes=_classes(args.classes))
    problems = [w for w in caught if issubclass(w.category, DataWarning)]
    for w in problems[:20]:
        print(f"warning: {w.message}")
    extra = f"; {'; '.join(notes)}" if notes else ""
    skipped = f"; {len(problems)} problem(s) skipped" if problems else ""
    print(f"wrote {args.source} as {args.to} to {args.out}{extra}{skipped}; read it with: cnnkit data check {target}")
    return 0


def run_show(args) -> int:
    from cnnkit.io import save_figure
    from cnnkit.viz.draw import annotation_grid

    if args.source == "scenes":
        from cnnkit.data.scene_dataset import load_scenes

        counts = {"train": 0, "val": 0, "test": 0}
        counts[args.split] = args.n
        ds = load_scenes(**counts, progress=False)[args.split]
    else:
        from cnnkit.data.detection_files import detect_format, load_detection
        from cnnkit.errors import InputError

        view = "semantic" if detect_format(args.source) == "labelpng" else "detection"
        parts = load_detection(args.source, view=view)
        if args.split not in parts:
            raise InputError(f"{args.source} has no {args.split} split (it has {', '.join(parts)})")
        ds = parts[args.split]
    fig = annotation_grid(ds, n=min(args.n, len(ds)))
    save_figure(args.out, fig)
    print(f"wrote {args.out} ({min(args.n, len(ds))} images of {ds.name}, {args.split})")
    return 0

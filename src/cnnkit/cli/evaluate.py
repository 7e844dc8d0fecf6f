"""`cnnkit evaluate`: the metrics of a checkpoint's task on data (a classifier: accuracy, top-5, per-class
accuracy and the confusion matrix; other tasks print their meter's numbers, e.g. mAP for a detector).

    cnnkit evaluate runs/lenet/best.safetensors --data digits --split test
    cnnkit evaluate runs/a/best.safetensors runs/b/best.safetensors --data shapes --tta flip --json
"""

from __future__ import annotations

import json
import sys


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "evaluate", help="measure checkpoints on a data split (several checkpoints: an ensemble)",
        description="Evaluate one checkpoint, or the average of several classifiers (an ensemble), on a split "
                    "of DATA, preprocessed as the checkpoint expects (size, channels, mean/std). The metrics are "
                    "those of the checkpoint's task.",
    )
    p.add_argument("checkpoints", nargs="+", metavar="CHECKPOINT", help="cnnkit model file(s) (.safetensors)")
    p.add_argument("--data", required=True, help="folder, file or built-in name (digits, shapes ...)")
    p.add_argument("--split", choices=["train", "val", "test", "all"], default="test")
    p.add_argument("--split-seed", type=int, default=None,
                   help="seed of the split (default: the one the checkpoint was trained with)")
    p.add_argument("--tta", choices=["auto", "flip", "5crop", "10crop"], default=None,
                   help="test-time augmentation (classifiers): auto picks views that suit the data (no mirroring for "
                        "digits), flip, 5crop (shifts), 10crop (shifts and mirrors); the change it makes is reported")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--strict", action="store_true", help="stop at an unreadable image instead of skipping it")
    p.add_argument("--json", action="store_true", help="print the metrics as JSON")
    p.set_defaults(func=run)


def run(args) -> int:
    from cnnkit.checkpoint import load_model_file, read_model_meta
    from cnnkit.errors import FileFormatError, InputError
    from cnnkit.tasks import DEFAULT_TASK, get_task
    from cnnkit.train.runs import one_line_warnings

    if args.batch_size < 1:
        raise InputError(f"--batch-size must be at least 1, got {args.batch_size}")
    metas = []
    for path in args.checkpoints:
        meta = read_model_meta(path)
        if meta is None:
            raise FileFormatError(f"{path} has no cnnkit model description; evaluate needs a file written by "
                                  "`cnnkit train` (or cnnkit.checkpoint.save_model_file)")
        metas.append(meta)
    first = metas[0]
    task = get_task(first.get("task") or DEFAULT_TASK)
    if len(args.checkpoints) > 1 and any((m.get("task") or DEFAULT_TASK) != DEFAULT_TASK for m in metas):
        raise InputError("an ensemble averages class probabilities: give several classifiers, or evaluate "
                         "other models one at a time")
    for path, meta in zip(args.checkpoints[1:], metas[1:], strict=True):
        if len(meta.get("classes") or []) != len(first.get("classes") or []):
            raise InputError(f"{path} predicts {len(meta.get('classes') or [])} classes but {args.checkpoints[0]} "
                             f"predicts {len(first.get('classes') or [])}; an ensemble needs one set of classes")
    args.tta = _resolve_tta(args.tta, args.data)
    with one_line_warnings("cnnkit evaluate"):
        data = task.load_data(args.data, meta=first, splits=[args.split], split_seed=args.split_seed,
                              strict=args.strict, checkpoint=args.checkpoints[0])[args.split]

    if args.split_seed is None and task.name == DEFAULT_TASK:
        from cnnkit.train.split_record import apply_split_record

        for note in apply_split_record(args.checkpoints[0], args.split, data, args.data):
            print(f"cnnkit evaluate: {note}", file=sys.stderr)
    if len(args.checkpoints) == 1:
        model, _ = load_model_file(args.checkpoints[0])
        task.bind(model)
        result = task.evaluate(model, data, batch_size=args.batch_size, tta=args.tta)
        if args.tta and "accuracy" in result:  # the gain, with its sign: views that do not suit the data lose
            plain = task.evaluate(model, data, batch_size=args.batch_size)
            result["accuracy_without_tta"] = plain["accuracy"]
            result["tta_gain"] = result["accuracy"] - plain["accuracy"]
        result["checkpoint"] = args.checkpoints[0]
    else:
        from cnnkit.train.ensemble import evaluate_ensemble

        result = evaluate_ensemble(args.checkpoints, data, tta=args.tta, batch_size=args.batch_size)
    result.update({"data": args.data, "split": args.split, "tta": args.tta, "task": task.name})
    if args.json:
        print(json.dumps(_jsonable(result), indent=2))
    else:
        _print_report(result, getattr(data, "classes", None), task)
    return 0


def _resolve_tta(tta: str | None, data: str) -> str | None:
    """`auto` becomes the views that suit the data; mirrored views on data that must not be mirrored are warned of."""
    import sys

    from cnnkit.data.builtin import default_tta

    suited = default_tta(data)
    if tta == "auto":
        return suited or "flip"
    if tta in ("flip", "10crop") and suited == "5crop":
        print(f"cnnkit evaluate: warning: {data} must not be mirrored (a mirrored digit is another symbol), and "
              f"--tta {tta} averages mirrored views; --tta auto uses 5crop", file=sys.stderr)
    return tta


def _jsonable(value):
    import math

    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "tolist"):
        return _jsonable(value.tolist())
    return value


def _print_report(result: dict, classes: list[str] | None, task) -> None:
    tta = f", tta {result['tta']}" if result.get("tta") else ""
    print(f"{result['data']} ({result['split']} split, {result.get('n', '?')} images{tta})")
    if result.get("members"):  # an ensemble: each member, then their average
        from cnnkit.train.ensemble import format_report

        print(format_report(result))
    report = task.report({**result, "classes": classes} if classes is not None else result)
    if report:
        print(report)
    if "tta_gain" in result:
        print(f"test-time augmentation ({result['tta']}): accuracy {result['accuracy']:.4f} against "
              f"{result['accuracy_without_tta']:.4f} without it, a change of {100 * result['tta_gain']:+.2f} points")

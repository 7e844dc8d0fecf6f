"""`cnnkit evaluate`: the metrics of a checkpoint's task on data (a classifier: accuracy, top-5, per-class
accuracy and the confusion matrix; other tasks print their meter's numbers, e.g. mAP for a detector).

    cnnkit evaluate runs/lenet/best.safetensors --data digits --split test
    cnnkit evaluate runs/a/best.safetensors runs/b/best.safetensors --data shapes --tta flip --json
"""

from __future__ import annotations

import json


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
    p.add_argument("--tta", choices=["flip", "10crop"], default=None, help="test-time augmentation (classifiers)")
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
    with one_line_warnings("cnnkit evaluate"):
        data = task.load_data(args.data, meta=first, splits=[args.split], split_seed=args.split_seed,
                              strict=args.strict, checkpoint=args.checkpoints[0])[args.split]

    if len(args.checkpoints) == 1:
        model, _ = load_model_file(args.checkpoints[0])
        task.bind(model)
        result = task.evaluate(model, data, batch_size=args.batch_size, tta=args.tta)
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

"""`cnnkit evaluate`: accuracy, top-5, per-class accuracy and the confusion matrix of checkpoints on data.

    cnnkit evaluate runs/lenet/best.safetensors --data digits --split test
    cnnkit evaluate runs/a/best.safetensors runs/b/best.safetensors --data shapes --tta flip --json
"""

from __future__ import annotations

import json


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "evaluate", help="measure checkpoints on a data split (several checkpoints: an ensemble)",
        description="Evaluate one checkpoint, or the average of several (an ensemble), on a split of DATA, "
                    "preprocessed as the checkpoint expects (size, channels, mean/std).",
    )
    p.add_argument("checkpoints", nargs="+", metavar="CHECKPOINT", help="cnnkit model file(s) (.safetensors)")
    p.add_argument("--data", required=True, help="folder, CSV or built-in name (digits, shapes)")
    p.add_argument("--split", choices=["train", "val", "test", "all"], default="test")
    p.add_argument("--split-seed", type=int, default=None,
                   help="seed of the split (default: the one the checkpoint was trained with)")
    p.add_argument("--tta", choices=["flip", "10crop"], default=None, help="test-time augmentation")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--strict", action="store_true", help="stop at an unreadable image instead of skipping it")
    p.add_argument("--json", action="store_true", help="print the metrics as JSON")
    p.set_defaults(func=run)


def run(args) -> int:
    from cnnkit.checkpoint import load_model_file, read_model_meta
    from cnnkit.errors import FileFormatError, InputError
    from cnnkit.train import evaluate
    from cnnkit.train.runs import data_for_checkpoint, one_line_warnings

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
    for path, meta in zip(args.checkpoints[1:], metas[1:], strict=True):
        if len(meta.get("classes") or []) != len(first.get("classes") or []):
            raise InputError(f"{path} predicts {len(meta.get('classes') or [])} classes but {args.checkpoints[0]} "
                             f"predicts {len(first.get('classes') or [])}; an ensemble needs one set of classes")
    with one_line_warnings("cnnkit evaluate"):
        data = data_for_checkpoint(first, args.data, args.split, split_seed=args.split_seed, strict=args.strict,
                                   checkpoint=args.checkpoints[0])

    if len(args.checkpoints) == 1:
        model, _ = load_model_file(args.checkpoints[0])
        result = evaluate(model, data, batch_size=args.batch_size, tta=args.tta)
        result["checkpoint"] = args.checkpoints[0]
    else:
        from cnnkit.train.ensemble import evaluate_ensemble

        result = evaluate_ensemble(args.checkpoints, data, tta=args.tta, batch_size=args.batch_size)
    result.update({"data": args.data, "split": args.split, "tta": args.tta})
    if args.json:
        print(json.dumps(_jsonable(result), indent=2))
    else:
        _print_report(result, data.classes)
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


def _print_report(result: dict, classes: list[str]) -> None:
    tta = f", tta {result['tta']}" if result.get("tta") else ""
    print(f"{result['data']} ({result['split']} split, {result.get('n', '?')} images{tta})")
    if result.get("members"):  # an ensemble: each member, then their average
        from cnnkit.train.ensemble import format_report

        print(format_report(result))
    for key in ("accuracy", "top5", "loss"):
        if isinstance(result.get(key), float):
            print(f"  {key:<9} {result[key]:.4f}")
    per_class = result.get("per_class_accuracy")
    confusion = result.get("confusion_matrix")
    if per_class and confusion:
        width = max(5, *(len(c) for c in classes))
        print(f"\n  {'class':<{width}}  accuracy   n  (rows: true class; columns: predicted)")
        for name, acc, row in zip(classes, per_class, confusion, strict=False):
            shown = "   -  " if acc is None else f"{acc:.4f}"
            print(f"  {name:<{width}}  {shown}  {sum(row):>4}  {' '.join(f'{v:>3}' for v in row)}")

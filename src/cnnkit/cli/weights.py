"""`cnnkit weights inspect FILE` and `cnnkit weights check MODEL FILE`: what a weights file holds, and
whether it loads into a model; `cnnkit weights list`: the pretrained weights that installed packages ship."""

from __future__ import annotations

import json


def register(subparsers) -> None:
    p = subparsers.add_parser("weights", help="inspect weights files (.pth, .safetensors, cnnkit checkpoints)")
    sub = p.add_subparsers(dest="weights_command", metavar="ACTION", required=True)

    ins = sub.add_parser("inspect", help="list the tensors of a weights file and guess its architecture")
    ins.add_argument("file", help=".pth, .safetensors or cnnkit model file")
    ins.add_argument("--limit", type=int, default=None, metavar="N", help="show only the first N tensors")
    ins.add_argument("--json", action="store_true", help="print JSON instead of a table")
    ins.set_defaults(func=run_inspect)

    chk = sub.add_parser("check", help="load a weights file into a registered model and report what matched")
    chk.add_argument("model", help="registered model name, e.g. resnet50 (`cnnkit models` lists them)")
    chk.add_argument("file", help=".pth, .safetensors or cnnkit model file")
    chk.add_argument("--num-classes", type=int, default=None, help="build the model with this many classes")
    chk.add_argument("--strict", action="store_true", help="fail unless every tensor matches")
    chk.set_defaults(func=run_check)

    lst = sub.add_parser("list", help="pretrained weights that packages ship: model, package, installed, licence")
    lst.add_argument("--json", action="store_true", help="print JSON instead of a table")
    lst.set_defaults(func=run_list)


def run_inspect(args) -> int:
    from cnnkit.models.weights import guess_architecture, read_weights

    wf = read_weights(args.file)
    dtypes: dict[str, int] = {}
    for t in wf.state.values():
        name = str(t.dtype).removeprefix("torch.")
        dtypes[name] = dtypes.get(name, 0) + 1
    guesses = guess_architecture(wf.state)
    tensors = list(wf.state.items())[: args.limit] if args.limit else list(wf.state.items())
    if args.json:
        print(json.dumps({
            "file": str(wf.path),
            "format": wf.format,
            "wrapper": wf.wrapper,
            "prefix": wf.prefix,
            "other_entries": wf.extra_keys,
            "num_tensors": len(wf.state),
            "num_params": wf.num_params,
            "dtypes": dtypes,
            "cnnkit": wf.meta,
            "guess": [{"model": n, "score": s} for n, s in guesses],
            "tensors": [{"name": k, "shape": list(v.shape), "dtype": str(v.dtype).removeprefix("torch.")}
                        for k, v in tensors],
        }, indent=2))
        return 0

    print(f"file:     {wf.path} ({wf.format})")
    if wf.wrapper:
        others = f"; other entries: {', '.join(wf.extra_keys)}" if wf.extra_keys else ""
        print(f"weights:  under key {wf.wrapper!r}{others}")
    if wf.prefix:
        print(f"prefix:   {wf.prefix!r} dropped from every key")
    print(f"tensors:  {len(wf.state)}  ({', '.join(f'{n} {d}' for d, n in sorted(dtypes.items()))})")
    print(f"params:   {wf.num_params:,} (floating-point elements, buffers included)")
    if wf.meta:
        print("cnnkit:   " + json.dumps(wf.meta)[:400])
    if guesses:
        print("guess:    " + ", ".join(f"{n} ({s:.0%})" for n, s in guesses))
    else:
        print("guess:    no registered model has these tensor names")
    width = max((len(k) for k, _ in tensors), default=4)
    print()
    print(f"{'name':<{width}}  {'shape':<22} dtype")
    for k, v in tensors:
        print(f"{k:<{width}}  {str(list(v.shape)):<22} {str(v.dtype).removeprefix('torch.')}")
    if len(tensors) < len(wf.state):
        print(f"... {len(wf.state) - len(tensors)} more (drop --limit to see all)")
    return 0


def run_check(args) -> int:
    import logging

    from cnnkit.models import create_model
    from cnnkit.models.weights import load_weights

    kwargs = {} if args.num_classes is None else {"num_classes": args.num_classes}
    if _own_format(args.model, args.file):  # a dlib .dat or HED .h5: the family's reader, strict
        create_model(args.model, weights=args.file, **kwargs)
        print(f"{args.file}: read by {args.model}'s reader; every tensor of the model loaded")
        return 0
    model = create_model(args.model, **kwargs)
    logger = logging.getLogger("cnnkit.weights")
    level = logger.level
    logger.setLevel(logging.ERROR)  # the report below says it all; the logged warnings would repeat it
    try:
        report = load_weights(model, args.file, strict=args.strict)
    finally:
        logger.setLevel(level)
    print(report)
    if args.strict and report.skipped_classifier:
        from cnnkit.errors import InputError

        raise InputError(f"--strict: {len(report.skipped_classifier)} classifier tensor(s) of {args.file} do not fit "
                         f"{args.model} (another number of classes); pass --num-classes to match, or drop --strict")
    return 0 if report.ok else 1


def _own_format(model: str, file: str) -> bool:
    """True when `file` has the suffix of a registered non-PyTorch weights file of `model` (.dat, .h5)."""
    from pathlib import Path

    from cnnkit.models.pretrained import list_pretrained

    return any(e.reader != "torch" and Path(file).suffix == Path(e.path).suffix for e in list_pretrained(model))


def run_list(args) -> int:
    from cnnkit.models.pretrained import list_pretrained

    rows = [{"name": e.tag, "model": e.model, "package": f"{e.distribution}=={e.version}",
             "installed": e.is_installed(), "licence": e.licence, "source": e.source, "install": e.install_command,
             "file": e.path, "sha256": e.sha256} for e in list_pretrained()]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    cols = [("model", "model"), ("weights", "name"), ("package", "package"), ("installed", "installed"),
            ("licence", "licence")]
    cells = [[("yes" if r[k] else "no") if k == "installed" else str(r[k]) for _, k in cols] for r in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, (h, _) in enumerate(cols)]
    print("  ".join(h.ljust(w) for (h, _), w in zip(cols, widths, strict=True)).rstrip())
    for c in cells:
        print("  ".join(v.ljust(w) for v, w in zip(c, widths, strict=True)).rstrip())
    print()
    for r in rows:
        print(f"{r['model']}.{r['name']}: {r['source']}")
    missing = [r["install"] for r in rows if not r["installed"]]
    if missing:
        print("\nnot installed; to add them: " + "; ".join(dict.fromkeys(missing)))
    return 0

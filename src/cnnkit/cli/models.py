"""`cnnkit models`: list the registered models."""

from __future__ import annotations


def register(subparsers) -> None:
    p = subparsers.add_parser("models", help="list the registered models")
    p.add_argument("pattern", nargs="?", help="shell-style filter, e.g. 'resnet*'")
    p.set_defaults(func=run)


def run(args) -> int:
    from cnnkit.errors import UnknownNameError
    from cnnkit.models import list_models

    names = list_models(args.pattern)
    if not names:
        hint = "" if any(ch in args.pattern for ch in "*?[") else f"; for names containing it try '*{args.pattern}*'"
        raise UnknownNameError(f"no registered model matches {args.pattern!r}{hint} (`cnnkit models` lists all)")
    for name in names:
        print(name)
    return 0

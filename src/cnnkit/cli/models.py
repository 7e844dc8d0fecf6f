"""`cnnkit models`: list the registered models."""

from __future__ import annotations


def register(subparsers) -> None:
    p = subparsers.add_parser("models", help="list the registered models")
    p.add_argument("pattern", nargs="?", help="shell-style filter, e.g. 'resnet*'")
    p.set_defaults(func=run)


def run(args) -> int:
    from cnnkit.models import list_models

    for name in list_models(args.pattern):
        print(name)
    return 0

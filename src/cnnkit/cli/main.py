"""Entry point of the `cnnkit` command.

Sub-commands live one per module in this package; each module defines `register(subparsers)`, which
adds its parser and sets `func` (called with the parsed arguments, returning an exit code or None).
Adding a command is adding a module: nothing else to edit.

Errors caused by the user's input (`CnnkitError`, missing files, bad values) print one line and exit
with code 2. Set CNNKIT_DEBUG=1 to see the traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys

import cnnkit.cli
from cnnkit import __version__
from cnnkit.cli.common import DefaultsFormatter
from cnnkit.errors import CnnkitError

EXIT_USAGE = 2
EXIT_INTERNAL = 1


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (what was wrong and where to look) and exit code 2; `--help` shows
    every option's default."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", DefaultsFormatter)
        super().__init__(*args, **kwargs)

    def add_argument(self, *args, **kwargs):
        action = super().add_argument(*args, **kwargs)
        if not action.help and action.option_strings and action.default not in (None, argparse.SUPPRESS) \
                and action.default is not False:
            action.help = "(default: %(default)s)"  # argparse prints nothing for an option without help text
        return action

    def error(self, message: str):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="cnnkit", description="The convolutional-network curriculum as working software."
    )
    parser.add_argument("--version", action="version", version=f"cnnkit {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineParser)
    for info in sorted(pkgutil.iter_modules(cnnkit.cli.__path__), key=lambda i: i.name):
        if info.name in ("main", "common") or info.name.startswith("_"):
            continue
        module = importlib.import_module(f"cnnkit.cli.{info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        code = args.func(args)
        return int(code or 0)
    except BrokenPipeError:  # the reader went away (`cnnkit ... | head`): stop quietly, as a shell tool does
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so that the flush at exit does not fail a second time
        return 141  # 128 + SIGPIPE, what the shell reports for a tool killed by the broken pipe
    except KeyboardInterrupt:
        # a command may say how to pick up where it stopped (train: --resume); writes are atomic, so nothing is half
        hint = getattr(args, "on_interrupt", None)
        print(f"cnnkit {args.command}: interrupted" + (f"; {hint}" if hint else ""), file=sys.stderr)
        return 130
    except (CnnkitError, FileNotFoundError, IsADirectoryError, PermissionError, ValueError) as e:
        if os.environ.get("CNNKIT_DEBUG"):
            raise
        print(f"cnnkit {args.command}: error: {_one_line(e)}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as e:  # an internal fault: still one line, with the way to see more
        if os.environ.get("CNNKIT_DEBUG"):
            raise
        print(
            f"cnnkit {args.command}: internal error: {type(e).__name__}: {_one_line(e)} "
            "(set CNNKIT_DEBUG=1 for the traceback)",
            file=sys.stderr,
        )
        return EXIT_INTERNAL


def _one_line(e: BaseException) -> str:
    text = str(e) or type(e).__name__
    return " ".join(text.split())


if __name__ == "__main__":
    raise SystemExit(main())

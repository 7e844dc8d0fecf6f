"""Argument helpers shared by the sub-commands."""

from __future__ import annotations

import argparse


class DefaultsFormatter(argparse.HelpFormatter):
    """Help that shows each option's default, unless there is none or the help text already states it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (default is None or default is False or default == argparse.SUPPRESS or "default" in text.lower()
                or not action.option_strings
                or isinstance(action, argparse._HelpAction | argparse._VersionAction)):
            return text
        return f"{text} (default: %(default)s)" if text else "(default: %(default)s)"


class RawDefaultsFormatter(DefaultsFormatter, argparse.RawDescriptionHelpFormatter):
    """DefaultsFormatter that prints the description and epilog as written (examples keep their line breaks)."""


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1 (a stride of 0 is refused here, with a clear message)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def positive_float(text: str) -> float:
    """argparse type: a number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {value}")
    return value


def device(text: str) -> str:
    """argparse type: a torch device this machine has ("cpu", "cuda", "cuda:1"); a missing GPU is refused here."""
    name = text.strip().lower()
    kind, _, index = name.partition(":")
    if kind not in ("cpu", "cuda", "mps") or (index and not index.isdigit()):
        raise argparse.ArgumentTypeError(f"expected cpu, cuda or cuda:N, got {text!r}")
    if kind == "cuda":
        import torch

        if not torch.cuda.is_available():
            built = "this torch is a CPU-only build" if torch.version.cuda is None else "no CUDA GPU is visible"
            raise argparse.ArgumentTypeError(f"{text!r} is not available: {built}; use --device cpu")
        if index and int(index) >= torch.cuda.device_count():
            raise argparse.ArgumentTypeError(f"{text!r}: this machine has {torch.cuda.device_count()} GPU(s)")
    if kind == "mps":
        import torch

        if not torch.backends.mps.is_available():
            raise argparse.ArgumentTypeError(f"{text!r} is not available on this machine; use --device cpu")
    return name


def shape_hwc(text: str) -> tuple[int, int, int]:
    """argparse type: an input shape written HxWxC, e.g. 224x224x3."""
    parts = text.lower().replace(",", "x").split("x")
    try:
        h, w, c = (int(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HxWxC such as 224x224x3, got {text!r}") from None
    if min(h, w, c) < 1:
        raise argparse.ArgumentTypeError(f"every size in {text!r} must be at least 1")
    return h, w, c

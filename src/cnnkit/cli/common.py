"""Argument helpers shared by the sub-commands."""

from __future__ import annotations

import argparse


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1 (a stride of 0 is refused here, with a clear message)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


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

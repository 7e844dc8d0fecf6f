"""Built-in data sets for tasks beyond classification (detection, segmentation, landmarks): a name registry.

    from cnnkit.data.task_data import get_task_data
    parts = get_task_data("scenes")(train=2000, val=300, test=300, view="detection")

A loader is `(**opts) -> dict[split, Dataset]`, registered with `@register_task_data(name)`; the classification
built-ins ("digits", "shapes") live in `cnnkit.data.builtin`.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable

from cnnkit.errors import UnknownNameError

_TASK_DATA: dict[str, Callable] = {}
_MODULES = ("cnnkit.data.scene_dataset",)  # imported on first use, so the registry fills without import cycles


def register_task_data(name: str) -> Callable[[Callable], Callable]:
    """Register a loader of a built-in data set under `name`; a duplicate name raises."""

    def deco(fn: Callable) -> Callable:
        if name in _TASK_DATA:
            raise ValueError(f"task data set {name!r} is registered twice")
        _TASK_DATA[name] = fn
        return fn

    return deco


def _load_modules() -> None:
    for m in _MODULES:
        importlib.import_module(m)


def list_task_data() -> list[str]:
    """Names of the built-in task data sets."""
    _load_modules()
    return sorted(_TASK_DATA)


def is_task_data(name: str) -> bool:
    return name in list_task_data()


def get_task_data(name: str) -> Callable:
    """The loader of built-in task data set `name`; an unknown name raises with the close matches."""
    _load_modules()
    try:
        return _TASK_DATA[name]
    except KeyError:
        close = difflib.get_close_matches(name, _TASK_DATA, n=3, cutoff=0.5)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        raise UnknownNameError(f"unknown data set {name!r}; {hint}built-ins: {', '.join(sorted(_TASK_DATA))}") from None

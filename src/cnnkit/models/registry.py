"""One registry for every model: `@register_model`, `create_model(name, **kwargs)`, `list_models()`."""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Callable

import torch.nn as nn

from cnnkit.errors import InputError, UnknownNameError

_MODELS: dict[str, Callable[..., nn.Module]] = {}


def register_model(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Register a keyword-only model builder under its function name; a duplicate name raises."""
    name = fn.__name__
    if name in _MODELS:
        raise ValueError(f"model {name!r} is registered twice ({_MODELS[name].__module__} and {fn.__module__})")
    _MODELS[name] = fn
    return fn


def list_models(pattern: str | None = None) -> list[str]:
    """Sorted names of the registered models, optionally filtered by a shell-style pattern ("resnet*")."""
    names = sorted(_MODELS)
    return [n for n in names if fnmatch.fnmatch(n, pattern)] if pattern else names


def get_model_builder(name: str) -> Callable[..., nn.Module]:
    """The builder registered as `name`; an unknown name raises with the close matches."""
    try:
        return _MODELS[name]
    except KeyError:
        close = difflib.get_close_matches(name, _MODELS, n=5, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else "; `cnnkit models` lists them"
        raise UnknownNameError(f"unknown model {name!r}{hint}") from None


def create_model(name: str, **kwargs) -> nn.Module:
    """Build a registered model by name, e.g. `create_model("resnet50", num_classes=10)`."""
    builder = get_model_builder(name)
    try:
        model = builder(**kwargs)
    except TypeError as e:  # an argument this family does not take
        raise InputError(f"model {name!r}: {e}") from None
    if isinstance(model, nn.Module) and not hasattr(model, "cnnkit_name"):
        # what `fit` records in the model file, so that a model trained from Python reloads with
        # `load_model_file`; weight files are left out (the trained weights are in the file) and so is any
        # value JSON cannot hold
        model.cnnkit_name = name
        model.cnnkit_kwargs = {k: v for k, v in kwargs.items() if k not in _NOT_RECORDED and _plain(v)}
    return model


_NOT_RECORDED = {"weights", "encoder_weights"}


def _plain(value) -> bool:
    """Whether a builder argument is a JSON value (numbers, strings, booleans, None, lists and dicts of them)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return True
    if isinstance(value, (list, tuple)):
        return all(_plain(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in value.items())
    return False

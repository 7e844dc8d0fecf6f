"""The cnnkit model file: weights as safetensors, with what it takes to rebuild the model in its metadata.

A file written by `save_model_file` holds the state dict and, under the metadata key "cnnkit", JSON
such as `{"model": "resnet18", "model_kwargs": {"num_classes": 10}, "task": "classification", "classes": [...],
"input_size": [3, 32, 32], "mean": [...], "std": [...]}`. "task" names the `cnnkit.tasks` task the model serves
(the training loop writes it; `load_model_file` takes it from the rebuilt model when a file lacks it).
`load_model_file` rebuilds the model from it with no code executed from the file (safetensors holds only
tensors and strings).

This module builds models (`cnnkit.models`); `cnnkit.models` never imports it, so there is no import circle.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch.nn as nn

from cnnkit.errors import FileFormatError, InputError, MissingFileError
from cnnkit.io import atomic_write, require_file
from cnnkit.tasks.base import task_name_of

META_KEY = "cnnkit"  # models/weights.py keeps a copy: models must not import this module, which builds models


def save_model_file(path: str | os.PathLike, model: nn.Module, meta: dict[str, Any]) -> Path:
    """Write `model`'s weights and `meta` (must hold "model" and "model_kwargs"; `fit` and `cnnkit train` also
    write "task") atomically; `read_model_meta` gives `meta` back exactly."""
    from safetensors.torch import save

    if "model" not in meta or "model_kwargs" not in meta:
        raise ValueError("checkpoint metadata needs 'model' and 'model_kwargs'")
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    data = save(state, metadata={META_KEY: json.dumps(meta)})
    target = Path(path)
    with atomic_write(target) as f:
        f.write(data)
    return target


def read_model_meta(path: str | os.PathLike) -> dict[str, Any] | None:
    """The cnnkit metadata of a safetensors file, or None when it has none."""
    from safetensors import safe_open

    p = require_file(path)
    try:
        with safe_open(str(p), framework="pt") as f:
            raw = (f.metadata() or {}).get(META_KEY)
    except Exception as e:  # safetensors raises its own types for truncated or foreign files
        with open(p, "rb") as f:
            head = f.read(4)
        if head[:2] == b"PK" or head[:1] == b"\x80":  # a torch.save zip archive or a raw pickle
            raise FileFormatError(
                f"{p} is a PyTorch .pth/.pt file (weights only, no model description), not a cnnkit model file; "
                f"train from it with `cnnkit train --model NAME --weights {p}`, or check it with "
                f"`cnnkit weights check NAME {p}`") from None
        raise FileFormatError(f"not a safetensors checkpoint (or truncated): {p} ({e})") from None
    return json.loads(raw) if raw else None


def load_model_file(path: str | os.PathLike) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model a cnnkit model file describes and load its weights. Returns (model, meta)."""
    from safetensors.torch import load_file

    from cnnkit.models import create_model

    meta = read_model_meta(path)
    if meta is None:
        raise FileFormatError(f"{path} holds weights but no cnnkit model description; use load_weights on a model")
    model = create_model(meta["model"], **meta.get("model_kwargs", {}))
    try:
        state = load_file(str(path))
    except Exception as e:
        raise FileFormatError(f"cannot read weights from {path} ({e})") from None
    result = model.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise FileFormatError(
            f"{path} does not match model {meta['model']!r}: missing {result.missing_keys[:5]}, "
            f"unexpected {result.unexpected_keys[:5]}"
        )
    model.eval()
    if not meta.get("task"):
        meta["task"] = task_name_of(model)
    return model, meta


def load_source(source: str, *, weights: str | os.PathLike | None = None,
                num_classes: int | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """The model a command-line SOURCE names (`cnnkit export`, `cnnkit bench`): a cnnkit model file, or a
    registered model name.

    Args:
        source: path of a cnnkit checkpoint (safetensors with cnnkit metadata), or a name such as "resnet50".
        weights: for a model name, a weights file to load (`load_weights`: .pth, .safetensors ...); without it
            the weights are random.
        num_classes: for a model name, the number of classes to build it with.

    Returns:
        (model in eval mode, metadata: {"model", "model_kwargs", "task", ...}).

    Raises:
        MissingFileError: SOURCE looks like a path (has a folder or a suffix) and does not exist.
        UnknownNameError: SOURCE is neither a file nor a registered model.
    """
    from cnnkit.models import create_model, load_weights

    path = Path(source)
    if path.is_file():
        if weights is not None or num_classes is not None:
            raise InputError("--weights and --num-classes apply to a model name, not to a checkpoint file")
        model, meta = load_model_file(path)
        return model.eval(), meta
    if os.sep in source or path.suffix in (".safetensors", ".pth", ".pt", ".cnnkit", ".ckpt"):
        raise MissingFileError(f"file not found: {source}")
    kwargs = {} if num_classes is None else {"num_classes": num_classes}
    model = create_model(source, **kwargs)
    if weights is not None:
        print(load_weights(model, weights))
    meta: dict[str, Any] = {"model": source, "model_kwargs": kwargs, "task": task_name_of(model)}
    if weights is not None:
        meta["weights"] = Path(weights).name
    return model.eval(), meta

"""The cnnkit model file: weights as safetensors, with what it takes to rebuild the model in its metadata.

A file written by `save_model_file` holds the state dict and, under the metadata key "cnnkit", JSON
such as `{"model": "resnet18", "model_kwargs": {"num_classes": 10}, "task": "classification", "classes": [...],
"input_size": [3, 32, 32], "mean": [...], "std": [...]}`. "task" names the `cnnkit.tasks` task the model serves
(written from the model's `task` attribute when the metadata lacks it; files from before tasks read as the
rebuilt model's). `load_model_file` rebuilds the model from it
with no code executed from the file (safetensors holds only tensors and strings).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch.nn as nn

from cnnkit.errors import FileFormatError
from cnnkit.io import atomic_write, require_file

META_KEY = "cnnkit"


def save_model_file(path: str | os.PathLike, model: nn.Module, meta: dict[str, Any]) -> Path:
    """Write `model`'s weights and `meta` (must hold "model" and "model_kwargs"; "task" is added from the
    model when missing) atomically."""
    from safetensors.torch import save

    from cnnkit.tasks.base import task_name_of

    if "model" not in meta or "model_kwargs" not in meta:
        raise ValueError("checkpoint metadata needs 'model' and 'model_kwargs'")
    meta = {**meta, "task": meta.get("task") or task_name_of(model)}
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
        from cnnkit.tasks.base import task_name_of

        meta["task"] = task_name_of(model)
    return model, meta

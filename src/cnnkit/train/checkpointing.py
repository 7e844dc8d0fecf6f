"""Checkpoints of a run folder, and the random-number state that makes a resumed run exact.

A run folder holds:

    last.state.pt       everything needed to resume: weights, optimizer, epoch, batch index, global step,
                        RNG states, the epoch's data order, callback states, config, history
    last.safetensors    the same weights as a cnnkit model file (`cnnkit.checkpoint.load_model_file`)
    best.safetensors    the weights of the epoch with the best validation accuracy

Why the weights are in last.state.pt too: each file is replaced atomically, but two files cannot be
replaced together. A kill -9 between the two writes would leave weights of step N beside an optimizer of
step N - k. So resuming reads only last.state.pt, which is self-consistent by construction, and
last.safetensors is a convenience copy for evaluate/predict/export; its metadata carries the global step,
and `sync_last_file` rewrites it on resume when it lags behind (killed between the two writes).

last.state.pt is read with `torch.load(weights_only=True)`: it holds only tensors, numbers, strings, lists
and dicts, so loading it runs no code from the file.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from cnnkit.checkpoint import read_model_meta, save_model_file
from cnnkit.errors import FileFormatError
from cnnkit.io import atomic_write

STATE_FILE = "last.state.pt"
LAST_FILE = "last.safetensors"
BEST_FILE = "best.safetensors"
STATE_FORMAT = 1


def get_rng_state() -> dict[str, Any]:
    """The states of Python's, NumPy's and torch's global generators, as tensors and plain values."""
    version, mt, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": {"version": version, "mt": torch.tensor(mt, dtype=torch.int64), "gauss": gauss},
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached": float(cached)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Inverse of `get_rng_state`."""
    py = state["python"]
    random.setstate((py["version"], tuple(int(v) for v in py["mt"].tolist()), py["gauss"]))
    npy = state["numpy"]
    np.random.set_state((npy["kind"], npy["keys"].numpy().astype(np.uint32), npy["pos"], npy["has_gauss"],
                         npy["cached"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_state(run_dir: str | Path, state: dict[str, Any], model: nn.Module, meta: dict[str, Any]) -> None:
    """Write last.state.pt (with the weights inside), then last.safetensors; each write is atomic.

    Args:
        run_dir: the run folder.
        state: the resumable state (see `Trainer.state_dict`); must hold "global_step".
        model: the (unwrapped) model whose weights to save.
        meta: cnnkit model-file metadata ("model", "model_kwargs", "classes" ...).
    """
    run_dir = Path(run_dir)
    weights = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    with atomic_write(run_dir / STATE_FILE) as f:
        torch.save({**state, "format": STATE_FORMAT, "model": weights, "meta": meta}, f)
    save_model_file(run_dir / LAST_FILE, model, {**meta, "global_step": state["global_step"],
                                                  "epoch": state["epoch"]})


def save_best(run_dir: str | Path, model: nn.Module, meta: dict[str, Any]) -> None:
    """Write best.safetensors (atomic)."""
    save_model_file(Path(run_dir) / BEST_FILE, model, meta)


def has_state(run_dir: str | Path) -> bool:
    return (Path(run_dir) / STATE_FILE).is_file()


def load_state(run_dir: str | Path) -> dict[str, Any]:
    """Read last.state.pt (weights under "model", plus everything `save_state` stored).

    Raises:
        FileFormatError: the file is not a cnnkit training state (or is damaged).
    """
    path = Path(run_dir) / STATE_FILE
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # pickle and zip errors of many types: all mean "not a state we wrote"
        raise FileFormatError(f"cannot read training state {path} ({type(e).__name__}: {e}); "
                              "delete the run folder or start without --resume") from None
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise FileFormatError(f"{path} is not a cnnkit training state (format {STATE_FORMAT})")
    return state


def sync_last_file(run_dir: str | Path, state: dict[str, Any], model: nn.Module) -> bool:
    """Rewrite last.safetensors from `model` (holding `state`'s weights) when it is missing, damaged or of
    another step than `state` (a kill between the two writes of `save_state`). True when it was rewritten."""
    last = Path(run_dir) / LAST_FILE
    saved_step = None
    if last.is_file():
        try:
            saved_step = (read_model_meta(last) or {}).get("global_step")
        except FileFormatError:
            saved_step = None  # a damaged convenience copy: rewritten below
    if saved_step == state["global_step"]:
        return False
    save_model_file(last, model, {**state["meta"], "global_step": state["global_step"], "epoch": state["epoch"]})
    return True

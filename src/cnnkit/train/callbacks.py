"""Typed hooks into the training loop, with state that is saved in checkpoints.

The loop calls, in this order:

    on_fit_start(trainer)
    for each epoch:
        on_epoch_start(trainer)
        for each batch:
            on_after_backward(trainer)          # gradients are in .grad, before clipping and the step
            on_batch_end(trainer, step, loss)   # after the optimizer step; step = trainer.global_step
        on_epoch_end(trainer, metrics)          # metrics = the epoch's history row (val included)
    on_fit_end(trainer)

A callback may set `trainer.should_stop = True` to end the run after the current epoch. Whatever it must
remember across a resume goes in `state_dict()` (plain Python values and tensors only: the checkpoint is
read with `torch.load(weights_only=True)`).

Callbacks see the trainer through the `Trainer` protocol below (what `cnnkit.train.loop.Trainer` offers), so
this module does not depend on the loop.
"""

from __future__ import annotations

import math
from typing import Any, Protocol


class Trainer(Protocol):
    """What a callback may read (and `should_stop`, write) on the running trainer."""

    model: Any  # the unwrapped nn.Module, even under DDP
    optimizer: Any  # torch.optim.Optimizer
    config: Any  # the TrainConfig
    task: Any  # the cnnkit.tasks.Task being trained
    epoch: int  # 0-based index of the epoch in progress
    global_step: int  # optimizer steps taken so far
    should_stop: bool  # set True to stop after this epoch
    history: list[dict[str, Any]]  # one row per finished epoch
    out_dir: Any  # pathlib.Path of the run folder, or None
    params: list  # the parameters being optimised
    last_grad_norm: float | None  # the pre-clipping gradient norm when clipping is on


class Callback:
    """Base class: every hook does nothing; override the ones you need."""

    def on_fit_start(self, trainer: Trainer) -> None:
        pass

    def on_epoch_start(self, trainer: Trainer) -> None:
        pass

    def on_after_backward(self, trainer: Trainer) -> None:
        pass

    def on_batch_end(self, trainer: Trainer, step: int, loss: float) -> None:
        pass

    def on_epoch_end(self, trainer: Trainer, metrics: dict[str, Any]) -> None:
        pass

    def on_fit_end(self, trainer: Trainer) -> None:
        pass

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


class EarlyStopping(Callback):
    """Stop when the monitored metric has not improved for `patience` epochs.

    Args:
        patience: epochs without improvement to tolerate.
        monitor: a key of the epoch's metrics ("val_acc", "val_loss", "train_loss" ...).
        mode: "max" when larger is better, "min" otherwise.
        min_delta: the smallest change that counts as an improvement.
    """

    def __init__(self, patience: int, monitor: str = "val_acc", mode: str = "max", min_delta: float = 0.0):
        if mode not in ("max", "min"):
            raise ValueError(f"mode must be 'max' or 'min', got {mode!r}")
        self.patience = patience
        self.monitor = monitor
        self.mode = mode
        self.min_delta = min_delta
        self.best = -math.inf if mode == "max" else math.inf
        self.wait = 0
        self.stopped_epoch: int | None = None

    def _improved(self, value: float) -> bool:
        if self.mode == "max":
            return value > self.best + self.min_delta
        return value < self.best - self.min_delta

    def on_epoch_end(self, trainer: Trainer, metrics: dict[str, Any]) -> None:
        value = metrics.get(self.monitor)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return  # nothing to judge by (no validation data): never stop on missing evidence
        if self._improved(value):
            self.best, self.wait = float(value), 0
            return
        self.wait += 1
        if self.wait >= self.patience:
            self.stopped_epoch = int(metrics["epoch"])
            trainer.should_stop = True

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "wait": self.wait, "stopped_epoch": self.stopped_epoch}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.wait, self.stopped_epoch = state["best"], state["wait"], state["stopped_epoch"]


class PrintEpochs(Callback):
    """Print one line per epoch (the row's train_ and val_ numbers, lr, time); `fit(progress=True)` adds it."""

    def on_epoch_end(self, trainer: Trainer, metrics: dict[str, Any]) -> None:
        from cnnkit.train import distributed

        if not distributed.is_main():
            return
        from tqdm.auto import tqdm

        m = metrics
        train, val = _numbers(m, "train_"), _numbers(m, "val_")
        val = f" | val {val}" if val else ""
        tqdm.write(f"epoch {m['epoch']}/{trainer.config.epochs} train {train}{val} | lr {m['lr']:.3g} | "
                   f"{m['seconds']:.1f} s")


def _numbers(row: dict[str, Any], prefix: str) -> str:
    """'loss 0.1234 acc 0.5000' from the row's `prefix` entries that hold numbers."""
    return " ".join(f"{k[len(prefix):]} {v:.4f}" for k, v in row.items()
                    if k.startswith(prefix) and isinstance(v, (int, float)) and not isinstance(v, bool))


class CallbackList:
    """Calls each hook on every callback, in the order given."""

    def __init__(self, callbacks):
        self.callbacks: list[Callback] = list(callbacks)

    def call(self, hook: str, *args) -> None:
        """Call `hook` (e.g. "on_epoch_end") with `args` on each callback."""
        for cb in self.callbacks:
            getattr(cb, hook)(*args)

    def state_dict(self) -> list[dict[str, Any]]:
        return [{"name": type(cb).__name__, "state": cb.state_dict()} for cb in self.callbacks]

    def load_state_dict(self, states: list[dict[str, Any]]) -> None:
        """Restore states matched by position and class name (a callback added since the checkpoint starts fresh)."""
        for cb, saved in zip(self.callbacks, states, strict=False):
            if saved["name"] == type(cb).__name__:
                cb.load_state_dict(saved["state"])

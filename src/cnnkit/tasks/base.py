"""A task is a class: it owns the loss, the collation of its targets, its metrics and the metric that picks the
best checkpoint. The training loop, checkpoints, resume, DDP and logs know nothing task-specific.

How to add a task (no edit anywhere else):

1. Subclass `Task` in `src/cnnkit/<room>/task.py` (e.g. `cnnkit/detect/task.py`), decorate it with
   `@register_task`, and set `name` (the registry key, written into model files as meta["task"]) and
   `best_metric` (a key of your meter's `compute()`; `best_mode` "max" or "min").
2. Implement `loss(outputs, targets) -> (scalar batch mean, {"part": float})` and `meter(model, data) -> Meter`
   (a Meter: `update(outputs, targets)`, `compute() -> dict` holding best_metric and "loss" when it has one,
   `all_reduce()` summing its counters over the ranks). Override `collate` when targets are not default-
   collatable (detection: a list of target dicts); `targets_to` already moves tensors, dicts and lists of them.
3. Optional: `train_stats` (per-batch sums the epoch reports as train_<key> = sum / samples, e.g. correct
   predictions), `bind(model)` (read what the loss needs from the model, e.g. YOLO's anchors), `load_data`
   (what `cnnkit train/evaluate --data` loads), `model_kwargs(train_data)` (builder arguments taken from the
   data, e.g. k-means anchors), `train_defaults` (the task's defaults of `cnnkit train` flags),
   `predict`/`render`/`describe` (`cnnkit predict`), `report` (`cnnkit evaluate`).
4. Models of the task carry a class attribute `task = "<name>"`; `task_for_model(model)` finds the task from it
   (a model without one is a classifier). `get_task(name)` imports every `cnnkit/<room>/task.py` the first time
   it meets an unknown name, so a task registered there is found without any list to extend.

Then `fit(model, train, val, config)` trains it, with exact resume, DDP, NaN stop, progress bar, log.csv,
metrics.json, curves and best.safetensors chosen by `best_metric`; `cnnkit train/evaluate/predict/export`
dispatch through the task the model file records.

Samples by task: classification (image Tensor (C, H, W), int); detection (image, {"boxes": Tensor[N, 4] xyxy
pixels float32, "labels": Tensor[N] int64, optional "masks": uint8 Tensor[N, H, W], "keypoints": Tensor[N, K, 2]});
segmentation (image, Tensor[H, W] int64 class ids, 255 = ignore); metric learning (image, int identity).
"""

from __future__ import annotations

import difflib
import importlib
import json
import math
import pkgutil
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

import torch
from torch.utils.data import default_collate

from cnnkit.errors import InputError, UnknownNameError

if TYPE_CHECKING:
    import numpy as np
    import torch.nn as nn
    from torch.utils.data import Dataset

DEFAULT_TASK = "classification"

_TASKS: dict[str, type[Task]] = {}


@runtime_checkable
class Meter(Protocol):
    """Accumulates a task's evaluation batch by batch; counters add up across batches and ranks."""

    def update(self, outputs: Any, targets: Any) -> None:
        """Add one batch: the model's outputs and the collated targets (on the model's device)."""

    def compute(self) -> dict[str, Any]:
        """The metrics as JSON-able values: the task's best_metric, "loss" when the meter tracks one, "n"."""

    def all_reduce(self) -> None:
        """Sum the counters over the processes of torch.distributed (a no-op on one process)."""


class Task:
    """Base class of every task: defaults that fit most tasks; override what yours does differently.

    Class attributes:
        name: registry key; the model file records it (meta["task"]).
        best_metric: key of `Meter.compute()` that picks best.safetensors (e.g. "accuracy", "map", "miou").
        best_mode: "max" when larger is better, "min" otherwise.
        history_key: the suffix under which best_metric shows in history rows, log.csv and curves
            (val_<history_key>); None: best_metric itself. Classification keeps its short "acc".
        main_train_stat: key of `train_stats` shown beside the loss in the progress bar, None: the loss only.
        loss_label: axis label of the loss curve.
        train_defaults: defaults of `cnnkit train` flags the user did not give, for this task (keys: epochs,
            batch_size, lr, optimizer, schedule, momentum, weight_decay, warmup_epochs, grad_clip); flags
            missing here take cnnkit's general defaults.
    """

    name: ClassVar[str]
    best_metric: ClassVar[str]
    best_mode: ClassVar[str] = "max"
    history_key: ClassVar[str | None] = None
    main_train_stat: ClassVar[str | None] = None
    loss_label: ClassVar[str] = "loss"
    train_defaults: ClassVar[dict[str, Any]] = {}

    def configure(self, config: Any) -> None:
        """Read what applies to this task from the TrainConfig (fit calls it once); default nothing."""

    def bind(self, model: nn.Module) -> None:
        """Read what the loss or the meter needs from the (unwrapped) model, e.g. YOLO's anchors and stride.
        `task_for_model` and `fit` call it; default nothing."""

    def model_kwargs(self, train_data: Any, *, verbose: bool = True) -> dict[str, Any]:
        """Builder arguments that come from the training data (`cnnkit train` passes those the builder takes and
        records them in meta["model_kwargs"]); e.g. YOLO's k-means anchors. `verbose`: may print what it found
        (False on all but the main process). Default none; num_classes comes from the data's `classes`."""
        return {}

    def check_data(self, train_data: Any, source: str) -> None:
        """Refuse training data this task cannot learn from, in one line naming `source` (the --data value),
        before a model is built. Default: nothing."""

    def check_model(self, model: nn.Module, train_data: Any, model_name: str) -> None:
        """Refuse, in one line in the user's terms, a model that cannot take the training data, before training
        starts. Default: nothing (most tasks fit their inputs to the model: letterboxing, padding to the stride)."""

    # -- training ---------------------------------------------------------------------------------------------
    def collate(self, samples: list) -> tuple[torch.Tensor, Any]:
        """Batch a list of (input, target) samples into (inputs Tensor (B, ...), targets); default_collate here."""
        return default_collate(samples)

    def targets_to(self, targets: Any, device: torch.device) -> Any:
        """Move targets to `device`: tensors, and dicts / lists / tuples of them (anything else as is)."""
        return move_to(targets, device)

    def loss(self, outputs: Any, targets: Any) -> tuple[torch.Tensor, dict[str, float]]:
        """The training loss of a batch: (scalar Tensor, the batch mean), and named parts for the logs (floats,
        batch means; the same keys every batch; reported per epoch as train_<part>)."""
        raise NotImplementedError(f"task {self.name!r} does not define a loss")

    def train_stats(self, outputs: Any, targets: Any) -> dict[str, float]:
        """Sums over the batch the epoch reports as train_<key> = sum / samples (e.g. {"acc": correct}).
        Same keys every batch; default none."""
        return {}

    def batch_size(self, inputs: Any, targets: Any) -> int:
        """Samples in a batch (the weight of its mean loss in the epoch's mean); default len(inputs)."""
        return len(inputs)

    # -- evaluation -------------------------------------------------------------------------------------------
    def meter(self, model: nn.Module, data: Any) -> Meter:
        """A fresh evaluation accumulator for `model` on `data` (a Dataset or DataLoader)."""
        raise NotImplementedError(f"task {self.name!r} does not define a meter")

    def history_metrics(self, metrics: dict[str, Any] | None) -> dict[str, Any]:
        """The validation entries of an epoch's history row, from `Meter.compute()` (None: no validation data).

        Default: val_loss and val_<history_key> (None without validation), plus every other scalar number of
        the metrics as val_<key> ("n" left out).
        """
        row: dict[str, Any] = {"val_loss": None, f"val_{self.row_key()}": None}
        if metrics is None:
            return row
        for key, value in metrics.items():
            if key != "n" and isinstance(value, (int, float)) and not isinstance(value, bool):
                row[f"val_{self.row_key() if key == self.best_metric else key}"] = value
        return row

    def evaluate(self, model: nn.Module, data: Any, **opts: Any) -> dict[str, Any]:
        """The metrics of `model` on `data` (`Meter.compute()`); opts: batch_size, device, bf16, channels_last,
        num_workers (others are ignored; a test-time augmentation "tta" is refused: it is for classifiers)."""
        from cnnkit.tasks.evaluation import evaluate_task

        if opts.get("tta"):
            raise InputError(f"test-time augmentation (--tta) is for classifiers, not for a {self.name} model")
        known = ("batch_size", "device", "bf16", "channels_last", "num_workers")
        return evaluate_task(model, data, self, **{k: opts[k] for k in known if k in opts})

    def row_key(self) -> str:
        """The best metric's name in history rows (without the val_ prefix)."""
        return self.history_key or self.best_metric

    def is_better(self, value: float, best: float | None) -> bool:
        """Whether `value` of best_metric beats `best` (None: nothing yet; NaN never beats anything)."""
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return False
        if best is None:
            return True
        return value > best if self.best_mode == "max" else value < best

    def report(self, metrics: dict[str, Any]) -> str:
        """Lines `cnnkit evaluate` prints: the scalar metrics, one per line."""
        lines = []
        for key, value in metrics.items():
            if isinstance(value, float):
                lines.append(f"  {key:<12} {value:.4f}")
            elif isinstance(value, int) and not isinstance(value, bool):
                lines.append(f"  {key:<12} {value}")
        return "\n".join(lines)

    # -- data and inference -----------------------------------------------------------------------------------
    def load_data(self, source: str, **opts: Any) -> dict[str, Dataset]:
        """The "train"/"val"/"test" datasets of `source` (folder, file or built-in name).

        Options tasks understand (ignore the others): image_size, in_chans, split_seed, seed, strict,
        augment (a spec string for training), meta (a model file's metadata: preprocess as it says).
        """
        raise NotImplementedError(f"task {self.name!r} cannot load data sets")

    def predict(self, model: nn.Module, image: np.ndarray, meta: dict[str, Any], **opts: Any) -> dict[str, Any]:
        """The result for one image (H, W, C) uint8 or float, as JSON-able values. Ignore unknown opts."""
        raise NotImplementedError(f"task {self.name!r} cannot predict")

    def render(self, image: np.ndarray, result: dict[str, Any], meta: dict[str, Any]) -> np.ndarray:
        """A picture (H, W, 3) uint8 of `result` drawn on `image`."""
        raise NotImplementedError(f"task {self.name!r} cannot draw its results")

    def predict_files(self, model: nn.Module, paths: list[str], meta: dict[str, Any],
                      **opts: Any) -> list[dict[str, Any]]:
        """`predict` on image files (read with `cnnkit.io.read_image`, RGB uint8)."""
        from cnnkit.io import read_image

        return [self.predict(model, read_image(p), meta, **opts) for p in paths]

    def describe(self, result: dict[str, Any]) -> str:
        """One line about a prediction for the terminal (default: its JSON)."""
        return json.dumps(result)[:200]

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def move_to(value: Any, device: torch.device) -> Any:
    """Tensors, and dicts / lists / tuples of them, moved to `device` (non-blocking); other values unchanged."""
    if isinstance(value, torch.Tensor):
        return value.to(device, non_blocking=True)
    if isinstance(value, dict):
        return {k: move_to(v, device) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(move_to(v, device) for v in value)
    return value


def register_task(cls: type[Task]) -> type[Task]:
    """Class decorator: register a Task subclass under `cls.name`; a duplicate name raises."""
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name:
        raise ValueError(f"{cls.__name__} needs a class attribute `name`")
    if not isinstance(getattr(cls, "best_metric", None), str):
        raise ValueError(f"{cls.__name__} needs a class attribute `best_metric`")
    if cls.best_mode not in ("max", "min"):
        raise ValueError(f"{cls.__name__}.best_mode must be 'max' or 'min', got {cls.best_mode!r}")
    old = _TASKS.get(name)
    if old is not None and (old.__module__, old.__qualname__) != (cls.__module__, cls.__qualname__):
        raise ValueError(f"task {name!r} is registered twice ({old.__module__} and {cls.__module__})")
    _TASKS[name] = cls
    return cls


def _discover() -> None:
    """Import cnnkit.tasks.* and every cnnkit/<room>/task.py, where tasks register themselves."""
    import cnnkit
    import cnnkit.tasks  # noqa: F401  (its __init__ imports the tasks that live there)

    for info in pkgutil.iter_modules(cnnkit.__path__):
        if info.ispkg and info.name != "tasks":
            try:
                importlib.import_module(f"cnnkit.{info.name}.task")
            except ModuleNotFoundError as e:
                if e.name != f"cnnkit.{info.name}.task":
                    raise  # the task module exists but one of its own imports fails: show that


def list_tasks() -> list[str]:
    """Sorted names of the registered tasks."""
    _discover()
    return sorted(_TASKS)


def get_task(name: str) -> Task:
    """A new instance of the task registered as `name`; an unknown name raises with the close matches."""
    if name not in _TASKS:
        _discover()
    try:
        return _TASKS[name]()
    except KeyError:
        close = difflib.get_close_matches(name, _TASKS, n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else f"; known tasks: {', '.join(sorted(_TASKS))}"
        raise UnknownNameError(f"unknown task {name!r}{hint}") from None


def task_name_of(model: nn.Module) -> str:
    """The task a model says it serves (`task` class attribute; through a DDP wrapper); default classification."""
    if isinstance(model, torch.nn.parallel.DistributedDataParallel):
        model = model.module
    name = getattr(model, "task", None)
    return name if isinstance(name, str) and name else DEFAULT_TASK


def task_for_model(model: nn.Module) -> Task:
    """The task `model` trains as: `get_task(task_name_of(model))`, bound to the model (`Task.bind`)."""
    task = get_task(task_name_of(model))
    task.bind(model.module if isinstance(model, torch.nn.parallel.DistributedDataParallel) else model)
    return task

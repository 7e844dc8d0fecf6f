"""Measuring a model: `evaluate` for a classifier (accuracy, top-5, per-class accuracy, confusion matrix, loss,
test-time augmentation), `evaluate_task` for any task, and `run_task_eval`, the pass `fit` validates with
(sharded over the ranks under torchrun)."""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader

from cnnkit.errors import InputError
from cnnkit.train import distributed
from cnnkit.train.metrics import ClassificationMeter

if TYPE_CHECKING:
    from cnnkit.tasks.base import Meter, Task


def seed_worker(worker_id: int) -> None:
    """worker_init_fn: seed NumPy and `random` in a loader worker from torch's seed for it.

    torch seeds each worker from the loader's generator; without this, every worker (and every epoch) would
    share NumPy's and `random`'s streams.
    """
    s = torch.initial_seed() % 2**32
    np.random.seed(s)
    random.seed(s)


def unwrap(model: nn.Module) -> nn.Module:
    """The model inside a DistributedDataParallel wrapper (or the model itself)."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def dataset_of(data) -> Any:
    """The Dataset behind `data` (a Dataset or a DataLoader)."""
    return data.dataset if isinstance(data, DataLoader) else data


def to_device(x: torch.Tensor, device: torch.device, channels_last: bool) -> torch.Tensor:
    """Move a batch to `device`, in NHWC memory layout when asked (4-D inputs only)."""
    x = x.to(device, non_blocking=True)
    if channels_last and x.ndim == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    return x


def eval_loader(data, batch_size: int, num_workers: int, shard: bool, collate_fn=None) -> DataLoader:
    """A loader in dataset order; `shard` splits it over the ranks without padding (so nothing counts twice);
    `collate_fn` batches the samples (a task's `collate`; default torch's)."""
    if isinstance(data, DataLoader):
        return data
    indices = list(range(len(data)))
    if shard:
        indices = indices[distributed.rank()::distributed.world_size()]
    # a generator of its own, so that validating never draws from the global RNG (resume stays exact)
    return DataLoader(torch.utils.data.Subset(data, indices), batch_size=batch_size, shuffle=False,
                      num_workers=num_workers, worker_init_fn=seed_worker, generator=torch.Generator(),
                      collate_fn=collate_fn)


def check_class_count(data, num_outputs: int) -> None:
    """Raise InputError naming both counts when the data's classes do not match the model's outputs."""
    classes = getattr(dataset_of(data), "classes", None)
    if classes is not None and len(classes) != num_outputs:
        raise InputError(f"the model predicts {num_outputs} classes but the data has {len(classes)}; "
                         "use a checkpoint trained on this data (or retrain with --weights to replace the head)")


@torch.no_grad()
def run_eval(model: nn.Module, data, *, batch_size: int, device: torch.device, tta: str | None = None,
              bf16: bool = False, channels_last: bool = False, num_workers: int = 0,
              shard: bool = False) -> ClassificationMeter:
    was_training = model.training
    model.eval()
    meter = None
    try:
        for x, y in eval_loader(data, batch_size, num_workers, shard):
            x, y = to_device(x, device, channels_last), y.to(device)
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=bf16):
                if tta is None:
                    scores = model(x).float()
                    loss_sum = F.cross_entropy(scores, y, reduction="sum")
                else:
                    from cnnkit.train.tta import predict_tta

                    scores = predict_tta(model, x, tta).float()  # probabilities averaged over the views
                    loss_sum = F.nll_loss(scores.clamp_min(1e-12).log(), y, reduction="sum")
            if meter is None:
                check_class_count(data, scores.shape[1])
                meter = ClassificationMeter(scores.shape[1])
            meter.update(scores, y, float(loss_sum))
    finally:
        model.train(was_training)
    if meter is None:  # this rank's shard (or the data) is empty: counters of the right size, all zero
        meter = ClassificationMeter(num_outputs(model, data, device))
    return meter


@torch.no_grad()
def run_task_eval(model: nn.Module, data, task: Task, *, batch_size: int, device: torch.device, bf16: bool = False,
                  channels_last: bool = False, num_workers: int = 0, shard: bool = False) -> Meter:
    """Feed `data` through `model` in eval mode into `task.meter(model, data)`; returns the meter (not reduced).

    Args:
        model: the model (or its DDP wrapper).
        data: a Dataset of the task's samples, or a DataLoader (used as given).
        task: the Task (collation, target moving, meter).
        batch_size, num_workers: of the loader built for a Dataset.
        device: where the model is.
        bf16, channels_last: as in training.
        shard: evaluate only this rank's share of a Dataset (then call `meter.all_reduce()`).
    """
    was_training = model.training
    model.eval()
    meter = task.meter(unwrap(model), data)
    try:
        for x, y in eval_loader(data, batch_size, num_workers, shard, collate_fn=task.collate):
            x, y = to_device(x, device, channels_last), task.targets_to(y, device)
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=bf16):
                outputs = model(x)
            meter.update(outputs, y)
    finally:
        model.train(was_training)
    return meter


def evaluate_task(model: nn.Module, data, task: Task | None = None, *, batch_size: int = 64,
                  device: str | torch.device | None = None, bf16: bool = False, channels_last: bool = False,
                  num_workers: int = 0) -> dict[str, Any]:
    """The metrics (`Meter.compute()`) of `model` on `data` for `task` (default: the model's task)."""
    if task is None:
        from cnnkit.tasks.base import task_for_model

        task = task_for_model(model)
    if device is None:
        p = next(unwrap(model).parameters(), None)
        dev = p.device if p is not None else torch.device("cpu")
    else:
        dev = torch.device(device)
    meter = run_task_eval(model, data, task, batch_size=batch_size, device=dev, bf16=bf16,
                          channels_last=channels_last, num_workers=num_workers)
    return meter.compute()


def num_outputs(model: nn.Module, data, device: torch.device) -> int:
    classes = getattr(dataset_of(data), "classes", None)
    if classes is not None:
        return len(classes)
    head = getattr(unwrap(model), "get_classifier", None)
    out = getattr(head(), "out_features", None) if head else None
    if out is None:
        raise InputError("cannot evaluate on empty data: no samples to evaluate")
    return int(out)


def evaluate(model: nn.Module, data, *, batch_size: int = 64, tta: str | None = None, device: str | None = None,
             bf16: bool = False, channels_last: bool = False, num_workers: int = 0) -> dict[str, Any]:
    """Classification metrics of `model` on `data`.

    Args:
        model: a classifier returning logits (N, C).
        data: a Dataset yielding (image Tensor (C, H, W), int label), or a DataLoader of such batches.
        batch_size: images per forward pass (ignored for a DataLoader).
        tta: None, or a test-time augmentation mode of `cnnkit.train.tta.predict_tta` ("flip", "10crop").
        device: where to run; default: where the model's parameters are.
        bf16: bfloat16 autocast.
        channels_last: feed NHWC tensors.
        num_workers: DataLoader workers.

    Returns:
        accuracy, top5, per_class_accuracy (list; None for a class without samples), confusion_matrix (list of
        lists, rows = true class, columns = predicted), loss (mean cross-entropy; NLL of the averaged
        probabilities under TTA), n; and classes (names) when the data has them.

    Raises:
        InputError: the data has a different number of classes than the model predicts.
    """
    if device is None:
        p = next(unwrap(model).parameters(), None)
        dev = p.device if p is not None else torch.device("cpu")
    else:
        dev = torch.device(device)
    meter = run_eval(model, data, batch_size=batch_size, device=dev, tta=tta, bf16=bf16,
                      channels_last=channels_last, num_workers=num_workers)
    result = meter.compute()
    classes = getattr(dataset_of(data), "classes", None)
    if classes is not None:
        result["classes"] = list(classes)
    return result

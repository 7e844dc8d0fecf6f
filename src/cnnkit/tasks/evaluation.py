"""The evaluation pass of any task: batches of a data set through a model into the task's Meter.

`run_task_eval` is what `fit` validates with (each rank takes its share of the data under torchrun; the caller
all-reduces the meter); `evaluate_task` is the one-call form (`Task.evaluate`'s default). This module stands
below the training loop: it needs torch and the Task interface only.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn
from torch.utils.data import DataLoader

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
    if shard and dist.is_available() and dist.is_initialized():
        indices = indices[dist.get_rank()::dist.get_world_size()]
    # a generator of its own, so that validating never draws from the global RNG (resume stays exact)
    return DataLoader(torch.utils.data.Subset(data, indices), batch_size=batch_size, shuffle=False,
                      num_workers=num_workers, worker_init_fn=seed_worker, generator=torch.Generator(),
                      collate_fn=collate_fn)


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


def evaluate_task(model: nn.Module, data, task: Task, *, batch_size: int = 64,
                  device: str | torch.device | None = None, bf16: bool = False, channels_last: bool = False,
                  num_workers: int = 0) -> dict[str, Any]:
    """The metrics (`Meter.compute()`) of `model` on `data` for `task` (`task_for_model(model)` gives a model's)."""
    if device is None:
        p = next(unwrap(model).parameters(), None)
        dev = p.device if p is not None else torch.device("cpu")
    else:
        dev = torch.device(device)
    meter = run_task_eval(model, data, task, batch_size=batch_size, device=dev, bf16=bf16,
                          channels_last=channels_last, num_workers=num_workers)
    return meter.compute()

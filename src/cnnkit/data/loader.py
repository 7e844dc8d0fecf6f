"""`make_loader`: a DataLoader that is reproducible from one seed, with or without worker processes."""

from __future__ import annotations

import random

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from cnnkit.errors import InputError


def _reseed_dataset(dataset, seed: int) -> None:
    """Reseed the random transforms inside `dataset`, looking through Subset/ConcatDataset wrappers."""
    reseed = getattr(dataset, "reseed", None)
    if callable(reseed):
        reseed(seed)
    inner = getattr(dataset, "dataset", None)  # torch Subset
    if inner is not None:
        _reseed_dataset(inner, seed)
    for d in getattr(dataset, "datasets", ()):  # torch ConcatDataset
        _reseed_dataset(d, seed)


def seed_worker(worker_id: int) -> None:
    """worker_init_fn: give each worker its own, reproducible random streams.

    Every worker receives a copy of the dataset, transform generator included; left alone, all workers would
    draw the same augmentations. torch seeds each worker with base_seed + worker_id, base_seed drawn from the
    loader's seeded generator, so deriving every stream from it keeps runs reproducible.
    """
    info = torch.utils.data.get_worker_info()
    seed = info.seed if info is not None else torch.initial_seed()
    np.random.seed(seed % 2**32)
    random.seed(seed)
    if info is not None:
        _reseed_dataset(info.dataset, seed)


def make_loader(
    dataset: Dataset,
    *,
    batch_size: int,
    shuffle: bool,
    seed: int,
    num_workers: int = 0,
    drop_last: bool = False,
    sampler: Sampler | None = None,
) -> DataLoader:
    """A DataLoader over `dataset`, reproducible from `seed`.

    With `num_workers > 0`, decoding and augmentation run in worker processes, each with its own random
    streams derived from `seed` (see `seed_worker`); the same seed and worker count give the same batches.
    With `num_workers == 0` the transform's own generator is used in the main process.

    Args:
        dataset: e.g. an ImageDataset.
        batch_size: items per batch (>= 1).
        shuffle: reshuffle every epoch (must be False when `sampler` is given).
        seed: seeds the shuffle order and the workers' random streams.
        num_workers: worker processes for decoding and augmenting (0: in the main process).
        drop_last: drop the last, smaller batch.
        sampler: a custom Sampler (e.g. WeightedRandomSampler, seeded by the caller).

    Raises:
        InputError: batch_size < 1, num_workers < 0, or shuffle together with a sampler.
    """
    if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise InputError(f"batch_size must be at least 1, got {batch_size!r}")
    if num_workers < 0:
        raise InputError(f"num_workers must be 0 or more, got {num_workers}")
    if sampler is not None and shuffle:
        raise InputError("pass shuffle=False when giving a sampler: the sampler decides the order")
    generator = torch.Generator()
    generator.manual_seed(int(seed))
    return DataLoader(
        dataset,
        batch_size=int(batch_size),
        shuffle=shuffle,
        sampler=sampler,
        num_workers=num_workers,
        drop_last=drop_last,
        generator=generator,
        worker_init_fn=seed_worker if num_workers > 0 else None,
        persistent_workers=num_workers > 0,
    )

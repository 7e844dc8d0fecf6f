"""P identities x K images per batch, so every batch holds positives and negatives for in-batch mining."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
from torch.utils.data import Sampler


class PKSampler(Sampler[list[int]]):
    """A batch sampler: each batch is K images of each of P identities (P * K indices).

    An epoch visits every identity about len(images of it) / K times, in a shuffled order; an identity with
    fewer than K images repeats some of them. Reproducible: the order depends on (seed, epoch) only.

    Args:
        labels: (N,) identity of each data set item.
        p: identities per batch.
        k: images per identity in a batch.
        seed: seed of the order.
        rank, world_size: under data-parallel training each process takes every world_size-th batch.
    """

    def __init__(self, labels: Sequence[int] | np.ndarray, p: int = 16, k: int = 4, *, seed: int = 0,
                 rank: int = 0, world_size: int = 1):
        labels = np.asarray(labels)
        self.ids, inverse = np.unique(labels, return_inverse=True)
        if len(self.ids) < p:
            raise ValueError(f"a P x K batch needs {p} identities, the data has {len(self.ids)}")
        if k < 2:
            raise ValueError(f"k must be at least 2 (an anchor and a positive), got {k}")
        self.members = [np.flatnonzero(inverse == i) for i in range(len(self.ids))]
        self.p, self.k, self.seed, self.epoch = p, k, seed, 0
        self.rank, self.world_size = rank, world_size

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _all_batches(self) -> list[list[int]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        # groups of K images: each identity's images shuffled and cut into groups (the last one topped up)
        groups: list[np.ndarray] = []
        for m in self.members:
            order = rng.permutation(m)
            n_groups = max(1, len(order) // self.k)
            for g in range(n_groups):
                chunk = order[g * self.k : (g + 1) * self.k]
                if len(chunk) < self.k:
                    chunk = np.concatenate([chunk, rng.choice(m, self.k - len(chunk))])
                groups.append(chunk)
        owner = np.repeat(np.arange(len(self.members)), [max(1, len(m) // self.k) for m in self.members])
        order = rng.permutation(len(groups))
        batches, current, used = [], [], set()
        pending = list(order)
        # fill batches with groups of P different identities; a group whose identity is already in the
        # batch waits for the next one
        while pending:
            rest = []
            for gi in pending:
                if owner[gi] in used:
                    rest.append(gi)
                    continue
                current.append(gi)
                used.add(owner[gi])
                if len(current) == self.p:
                    batches.append([int(i) for g in current for i in groups[g]])
                    current, used = [], set()
            if len(rest) == len(pending):  # only groups of identities already in the batch are left
                break
            pending = rest
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        yield from self._all_batches()[self.rank :: self.world_size]

    def __len__(self) -> int:
        return len(self._all_batches()[self.rank :: self.world_size])

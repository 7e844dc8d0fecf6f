"""One-shot N-way recognition: enrol one image of each of N identities, recognise another image of each.

The measure of an encoder on identities it never saw: `oneshot_accuracy(embeddings, labels)` draws episodes
of N identities, one enrolment and one query image of each, and counts the queries whose nearest enrolled
embedding is their own identity. Raw pixels passed as "embeddings" give the nearest-neighbour baseline.
"""

from __future__ import annotations

import numpy as np


def oneshot_accuracy(embeddings: np.ndarray, labels: np.ndarray, *, n_way: int = 20, episodes: int = 200,
                     seed: int = 0) -> float:
    """Top-1 accuracy of one-shot `n_way` recognition by nearest neighbour (squared Euclidean distance).

    Args:
        embeddings: (N, D) one vector per image (embeddings, or flattened pixels for the baseline).
        labels: (N,) identity of each image; identities with fewer than 2 images are skipped.
        n_way: identities per episode (at most the number of identities with 2+ images).
        episodes: episodes drawn; each contributes n_way queries.
        seed: seed of the episodes.

    Returns:
        The fraction of queries recognised, in [0, 1].
    """
    x = np.asarray(embeddings, np.float64).reshape(len(embeddings), -1)
    labels = np.asarray(labels)
    ids, counts = np.unique(labels, return_counts=True)
    ids = ids[counts >= 2]
    if len(ids) < n_way:
        raise ValueError(f"one-shot {n_way}-way needs {n_way} identities with 2+ images, got {len(ids)}")
    members = {i: np.flatnonzero(labels == i) for i in ids}
    rng = np.random.default_rng(seed)
    correct = total = 0
    for _ in range(episodes):
        chosen = rng.choice(ids, n_way, replace=False)
        pairs = np.array([rng.choice(members[i], 2, replace=False) for i in chosen])  # (n_way, 2)
        enrol, query = x[pairs[:, 0]], x[pairs[:, 1]]
        d = (query**2).sum(1)[:, None] - 2 * query @ enrol.T + (enrol**2).sum(1)[None, :]  # (n_way, n_way)
        correct += int((d.argmin(1) == np.arange(n_way)).sum())
        total += n_way
    return correct / total

"""Identity data sets for metric learning: the built-in `faces` and folders of one sub-folder per person.

Splits are by identity: the val and test identities are never trained on. Training items are groups of K
images of one identity (`IdentityGroups`), so a batch of P items is a P x K batch with positives and negatives
for in-batch mining, while the trainer batches and shuffles items as it does for any task. Evaluation items are
single images with their identity (`IdentityImages`).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from cnnkit.face.generator import FACES_SIZE, SPLIT_IDENTITIES, SPLIT_IMAGES, identity_split, make_faces

FACES_MEAN = (0.5, 0.5, 0.5)  # fixed for the built-in set, so every split and checkpoint normalises alike
FACES_STD = (0.25, 0.25, 0.25)
GROUP_SIZE = 4  # K: images of one identity per training item


def _to_tensor(images: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """uint8 (N, H, W, C) -> normalised float (N, C, H, W)."""
    x = torch.from_numpy(np.array(images)).permute(0, 3, 1, 2).float().div_(255.0)  # a copy: the pool is read-only
    m = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
    return (x - m) / s


class IdentityImages(Dataset):
    """Single images and their identity: `ds[i]` is (image (C, H, W) normalised, identity int).

    Attributes:
        images: uint8 (N, H, W, C). labels: (N,) int64 identity index. identities: the names.
        mean, std, image_size, in_chans: preprocessing (recorded in model files).
    """

    def __init__(self, images: np.ndarray, labels: np.ndarray, identities: Sequence[str], *,
                 mean: Sequence[float] = FACES_MEAN, std: Sequence[float] = FACES_STD, source: str = "",
                 split: str = ""):
        self.images, self.labels = images, np.asarray(labels, np.int64)
        self.identities = list(identities)
        self.mean, self.std = tuple(mean), tuple(std)
        self.image_size, self.in_chans = int(images.shape[1]), int(images.shape[3])
        self.input_size = [self.in_chans, self.image_size, self.image_size]
        self.source, self.split = source, split
        self._x = _to_tensor(images, mean, std)

    @property
    def targets(self) -> list[int]:
        return self.labels.tolist()

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self._x[i], int(self.labels[i])


class IdentityGroups(Dataset):
    """Training items: K images of one identity, drawn afresh every epoch, randomly flipped.

    `ds[i]` is (images (K, C, H, W), identities (K,)); item i belongs to identity i % n (each identity appears
    about len(its images) / K times per epoch). The trainer calls `reseed(seed)` before every item with a
    number made of (run seed, epoch, i), so the draws are exact on resume and independent of workers.
    No `classes` attribute: the trainer would take it for the model's output count.
    """

    def __init__(self, base: IdentityImages, k: int = GROUP_SIZE, flip: bool = True):
        self.base, self.k, self.flip = base, k, flip
        ids = np.unique(base.labels)
        self.members = [np.flatnonzero(base.labels == i) for i in ids]
        self.ids = ids
        reps = max(1, int(round(np.mean([len(m) for m in self.members]) / k)))
        self.n = len(ids) * reps
        self.mean, self.std, self.image_size, self.in_chans = base.mean, base.std, base.image_size, base.in_chans
        self.input_size = base.input_size  # one image's size, not a group's
        self.source, self.split = base.source, base.split
        self._rng = np.random.default_rng(0)

    def reseed(self, seed: int) -> None:
        self._rng = np.random.default_rng(seed)

    def size_text(self) -> str:
        """How much data this is, for people: images and identities, not only the items of an epoch."""
        return f"{len(self.base)} ({len(self.ids)} identities, drawn as {self.n} groups of {self.k} an epoch)"

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        m = self.members[i % len(self.members)]
        pick = self._rng.choice(m, self.k, replace=len(m) < self.k)
        x = self.base._x[pick]  # (K, C, H, W)
        if self.flip:
            flip = torch.from_numpy(self._rng.random(self.k) < 0.5)
            x = torch.where(flip[:, None, None, None], x.flip(3), x)
        return x, torch.from_numpy(self.base.labels[pick])


@functools.lru_cache(maxsize=6)
def _faces_split(split: str, n_identities: int, n_images: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    images, labels = make_faces(identity_split(split, n_identities), n_images, size)
    images.setflags(write=False)
    return images, labels


def load_faces(split: str, *, identities: int | None = None, images_per_identity: int | None = None,
               image_size: int | None = None) -> IdentityImages:
    """One split of the built-in `faces`: 2000 train, 100 val, 200 test identities by default (10 images each)."""
    n = identities or SPLIT_IDENTITIES[split]
    k = images_per_identity or SPLIT_IMAGES[split]
    size = image_size or FACES_SIZE
    images, labels = _faces_split(split, n, k, size)
    names = [f"{split}{int(i)}" for i in identity_split(split, n)]
    return IdentityImages(images, labels, names, source="faces", split=split)


def load_identity_folder(source: str, split: str, *, image_size: int | None, in_chans: int = 3,
                         split_seed: int = 0, strict: bool = False, mean=None, std=None) -> IdentityImages:
    """A folder of one sub-folder per identity, split by identity: 70% train, 15% val, 15% test (seeded)."""
    from cnnkit.data import load_dataset
    from cnnkit.errors import InputError

    ds = load_dataset(source, split="all", image_size=image_size or FACES_SIZE, in_chans=in_chans, strict=strict)
    n = len(ds.classes)
    if n < 3:
        raise InputError(f"{source}: {n} identities; metric learning splits identities into train/val/test, "
                         "so it needs at least 3 sub-folders (many more to learn anything)")
    order = np.random.default_rng(split_seed).permutation(n)
    n_val, n_test = max(1, round(0.15 * n)), max(1, round(0.15 * n))
    parts = {"test": order[:n_test], "val": order[n_test : n_test + n_val], "train": order[n_test + n_val :]}
    keep = np.isin(np.asarray(ds.targets), parts[split])
    idx = np.flatnonzero(keep)
    images = np.stack([ds.raw(int(i))[0] for i in idx]) if len(idx) else \
        np.zeros((0, ds.image_size, ds.image_size, in_chans), np.uint8)
    old = np.asarray(ds.targets)[idx]
    ids = np.unique(old)
    labels = np.searchsorted(ids, old)
    mean = mean if mean is not None else ds.mean
    std = std if std is not None else ds.std
    return IdentityImages(images, labels, [ds.classes[i] for i in ids], mean=mean, std=std, source=source,
                          split=split)

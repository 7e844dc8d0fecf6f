"""`ImageDataset`: labelled images from any source, converted to what the model expects.

A data set is a *store* (where the pixels come from: an in-memory array, or files decoded on demand) plus
the indices of one split. Every image leaves `__getitem__` as a float tensor (C, H, W): channels converted
to `in_chans`, resized to `image_size`, scaled to [0, 1], passed through `transform`, then normalised by
`mean`/`std`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from cnnkit.augment.functional import as_float
from cnnkit.augment.transforms import Transform
from cnnkit.data.convert import channel_stats, to_channels
from cnnkit.errors import FileFormatError


class ArrayStore:
    """Images held in memory as one uint8 array (N, H, W, C), already converted and resized."""

    def __init__(self, images: np.ndarray):
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def read(self, i: int) -> np.ndarray:
        return self.images[i]

    def stats(self, indices: np.ndarray, seed: int):
        # in memory, the exact statistics over the whole split are cheap
        return channel_stats(self.images, indices)

    def describe(self, i: int) -> str:
        return f"item {i}"


class FileStore:
    """Image files decoded on demand (in the loader's worker processes when it has any)."""

    # statistics of a file data set come from this many training images, not all: a fair estimate at a
    # fraction of a full decoding pass
    STATS_SAMPLE = 500

    def __init__(self, paths: Sequence[Path], in_chans: int, image_size: int | None):
        self.paths = list(paths)
        self.in_chans = in_chans
        self.image_size = image_size

    def __len__(self) -> int:
        return len(self.paths)

    def read(self, i: int) -> np.ndarray:
        from PIL import Image

        from cnnkit.imread import to_8bit

        path = self.paths[i]
        try:
            with Image.open(path) as im:
                if im.format == "JPEG" and self.image_size:
                    # JPEG can decode at 1/2, 1/4, 1/8 scale directly: much faster for big photos
                    im.draft("RGB" if self.in_chans == 3 else "L", (self.image_size, self.image_size))
                im = to_8bit(im, "RGB" if self.in_chans == 3 else "L", where=str(path))
                if self.image_size and im.size != (self.image_size, self.image_size):
                    im = im.resize((self.image_size, self.image_size), Image.BILINEAR)
                arr = np.asarray(im)
        except FileFormatError:
            raise
        except (OSError, SyntaxError, ValueError) as e:
            raise FileFormatError(f"cannot decode image {path} ({type(e).__name__}: {e})") from None
        return arr[:, :, None] if arr.ndim == 2 else arr

    def stats(self, indices: np.ndarray, seed: int):
        rng = np.random.default_rng(seed)
        pick = indices if len(indices) <= self.STATS_SAMPLE else rng.choice(indices, self.STATS_SAMPLE, replace=False)
        if len(pick) == 0:
            return channel_stats(np.zeros((0, 1, 1, self.in_chans), np.uint8))
        # images may differ in size when image_size is None: accumulate per image
        c = self.in_chans
        total, total_sq, count = np.zeros(c), np.zeros(c), 0
        for i in np.sort(pick):
            x = self.read(int(i)).reshape(-1, c).astype(np.float64) / 255.0
            total += x.sum(0)
            total_sq += (x * x).sum(0)
            count += x.shape[0]
        mean = total / count
        std = np.sqrt(np.maximum(total_sq / count - mean * mean, 0.0))
        std = np.where(std < 1e-6, 1.0, std)
        return tuple(float(v) for v in mean), tuple(float(v) for v in std)

    def describe(self, i: int) -> str:
        return str(self.paths[i])


class ImageDataset(Dataset):
    """Labelled images of one split, as float tensors ready for a model.

    `ds[i]` is `(image, label)`: image a float tensor (in_chans, H, W), the uint8 pixels scaled to [0, 1],
    passed through `transform` (which therefore sees [0, 1] values, as colour augmentations expect), then
    normalised by `mean`/`std` (skip that with `normalize=False`). `ds.raw(i)` gives the uint8 picture
    (H, W, in_chans) before any of that.

    Attributes:
        classes: class names; label k is `classes[k]`.
        targets: the label of every item, in order.
        in_chans: channels of every image (1 or 3).
        image_size: side of the square images, or None when they keep their own sizes.
        mean, std: per-channel normalisation on the [0, 1] scale (from the train split, or fixed for the
            built-in sets); store them in checkpoints so inference normalises alike.
        transform: callable on a float tensor (C, H, W) in [0, 1], or None.
        normalize: whether `__getitem__` applies mean/std.
        source: where the data came from (a built-in name or a path), for reports.
        split: "train", "val", "test" or "all".
    """

    def __init__(
        self,
        store,
        indices: np.ndarray,
        pool_targets: np.ndarray,
        classes: list[str],
        *,
        in_chans: int,
        image_size: int | None,
        mean: Sequence[float],
        std: Sequence[float],
        transform: Callable | None = None,
        source: str = "",
        split: str = "all",
    ):
        self._store = store
        self._indices = np.asarray(indices, dtype=np.int64)
        self._pool_targets = np.asarray(pool_targets)  # every item of the source, to re-select a recorded split
        self.targets: list[int] = [int(t) for t in self._pool_targets[self._indices]]
        self.classes = list(classes)
        self.in_chans = in_chans
        self.image_size = image_size
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)
        self.transform = transform
        self.normalize = True
        self.source = source
        self.split = split

    def __len__(self) -> int:
        return len(self._indices)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        raw, label = self.raw(i)
        x = torch.from_numpy(np.array(raw)).permute(2, 0, 1)  # (C, H, W) uint8 view of an HWC copy (pool is read-only)
        if isinstance(self.transform, Transform):
            x = as_float(self.transform(x))  # cnnkit's augmentations run OpenCV's 8-bit kernels on uint8
        else:
            x = x.float().div_(255.0)
            if self.transform is not None:
                x = self.transform(x)
        if self.normalize:
            mean = torch.tensor(self.mean, dtype=x.dtype).view(-1, 1, 1)
            std = torch.tensor(self.std, dtype=x.dtype).view(-1, 1, 1)
            x = (x - mean) / std
        return x, label

    def raw(self, i: int) -> tuple[np.ndarray, int]:
        """The uint8 image (H, W, in_chans), converted and resized but neither augmented nor normalised."""
        if not -len(self) <= i < len(self):
            raise IndexError(f"index {i} out of range for a data set of {len(self)} images")
        return self._store.read(int(self._indices[i])), self.targets[i]

    def describe(self, i: int) -> str:
        """Where item `i` comes from (its file, or its position in the source)."""
        return self._store.describe(int(self._indices[i]))

    def class_counts(self) -> list[int]:
        """Number of items of every class, in class order."""
        return np.bincount(np.asarray(self.targets, dtype=np.int64), minlength=len(self.classes)).tolist()

    def reseed(self, seed: int) -> None:
        """Reseed the transform's random generator (the loader calls this in every worker process)."""
        reseed = getattr(self.transform, "reseed", None)
        if reseed is not None:
            reseed(seed)

    def __repr__(self) -> str:
        size = f"{self.image_size}x{self.image_size}" if self.image_size else "own sizes"
        return (
            f"ImageDataset({self.source!r}, split={self.split!r}, {len(self)} images, {len(self.classes)} classes, "
            f"{self.in_chans} channel(s), {size})"
        )


def array_dataset_pool(images: np.ndarray, in_chans: int) -> np.ndarray:
    """Images (N, H, W) or (N, H, W, C) as contiguous uint8 (N, H, W, in_chans)."""
    a = np.asarray(images)
    if a.ndim == 3:
        a = a[..., None]
    return np.ascontiguousarray(to_channels(a, in_chans))

"""`Sample`: an image and the targets that must move with it."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import Tensor

from cnnkit.errors import InputError


@dataclass
class Sample:
    """An image with its boxes, masks, landmarks and labels, transformed together.

    Coordinates are continuous pixel coordinates: the image covers [0, W] x [0, H], and the centre of the
    pixel at row r, column c is (c + 0.5, r + 0.5). Boxes and landmarks share this frame, so one matrix
    moves both exactly. Numpy arrays are accepted and turned into tensors.

    Attributes:
        image: Tensor (C, H, W): float in [0, 1], or uint8 in [0, 255] (geometry then runs on OpenCV's 8-bit
            kernels, the fastest there are; a colour operation turns it into float in [0, 1]).
        boxes: Tensor (N, 4) in (x1, y1, x2, y2) pixels, or None. Geometric operations clip them to the image;
            they are never dropped (see `SanitizeBoxes`), so `labels` and per-object landmarks stay aligned.
        masks: integer Tensor (H, W) or (M, H, W) (class or instance ids), or None; resampled with nearest.
        landmarks: Tensor (K, 2) or (N, K, 2) of (x, y) pixels, or None; points that leave the image keep
            their (outside) coordinates.
        labels: Tensor (N,) with one label per box, or None; carried unchanged.
    """

    image: Tensor
    boxes: Tensor | None = None
    masks: Tensor | None = None
    landmarks: Tensor | None = None
    labels: Tensor | None = None

    def __post_init__(self):
        self.image = torch.as_tensor(self.image)
        if self.image.ndim != 3:
            raise InputError(f"Sample.image must be (C, H, W), got shape {tuple(self.image.shape)}")
        if not self.image.is_floating_point() and self.image.dtype != torch.uint8:
            raise InputError(f"Sample.image must be a float tensor in [0, 1] or uint8 in [0, 255], got "
                             f"{self.image.dtype}")
        h, w = self.image.shape[-2:]
        if self.boxes is not None:
            self.boxes = torch.as_tensor(self.boxes, dtype=torch.float32).reshape(-1, 4)
        if self.landmarks is not None:
            self.landmarks = torch.as_tensor(self.landmarks, dtype=torch.float32)
            if self.landmarks.shape[-1] != 2:
                raise InputError(f"landmarks must be (..., 2) xy points, got shape {tuple(self.landmarks.shape)}")
        if self.masks is not None:
            self.masks = torch.as_tensor(self.masks)
            if self.masks.ndim not in (2, 3) or tuple(self.masks.shape[-2:]) != (h, w):
                got = tuple(self.masks.shape)
                raise InputError(f"masks must be (H, W) or (M, H, W) with H, W = {h}, {w}; got {got}")
        if self.labels is not None:
            self.labels = torch.as_tensor(self.labels)

    @property
    def size(self) -> tuple[int, int]:
        """(H, W) of the image."""
        return int(self.image.shape[-2]), int(self.image.shape[-1])

    def replace(self, **changes) -> Sample:
        """A copy with some fields replaced (tensors are shared, not copied).

        The kernels call this on every step with outputs they built themselves, so it skips the checks of
        `__init__` (a measurable share of a cheap op such as a crop); use `Sample(...)` for outside data.
        """
        unknown = changes.keys() - _FIELDS
        if unknown:
            raise TypeError(f"Sample has no field {sorted(unknown)[0]!r}")
        new = object.__new__(Sample)  # no __init__ checks, no copy module: this runs several times per image
        new.__dict__.update(self.__dict__)
        new.__dict__.update(changes)
        return new


_FIELDS = frozenset(f.name for f in dataclasses.fields(Sample))

AugmentSample = Sample  # the name the training code uses

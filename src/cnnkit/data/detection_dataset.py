"""`DetectionDataset`: images with boxes, labels, masks and landmarks, from built-in scenes or annotation files.

A data set is a *source* (anything with `classes`, `__len__` and `get(i) -> DetectionItem`) plus a view:

- view="detection" (also "localisation", "landmarks"): `(image, target)` with image float (C, H, W) in [0, 1]
  and target {"boxes": float32 (N, 4) xyxy pixels, "labels": int64 (N,) 0-based class indices,
  "masks": uint8 (N, H, W) (when the source has them), "keypoints": float32 (N, K, 2) xy pixels (when it has
  them), "image_id": int, "iscrowd": bool (N,) (when the source flags crowd / difficult objects)}.
  N may be 0 (an image with no object is valid).
- view="semantic": `(image, int64 (H, W))` with 0 = background, k + 1 = class k, 255 = ignore.

An optional `transform` (a `cnnkit.augment` transform) moves boxes, masks and landmarks with the image; boxes it
shrinks below 1 pixel are dropped with their labels, masks and keypoints. `size` letterboxes every image to a
size x size square (aspect ratio kept, grey padding; `target["letterbox"]` holds the `LetterboxInfo`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from cnnkit.augment.sample import Sample
from cnnkit.data.letterbox import letterbox_sample
from cnnkit.errors import InputError

VIEWS = ("detection", "localisation", "landmarks", "semantic")
IGNORE_INDEX = 255


@dataclass
class DetectionItem:
    """One image and its objects, as numpy arrays (what a source gives).

    Attributes:
        image: uint8 (H, W, 3).
        boxes: float32 (N, 4) xyxy pixels.
        labels: int64 (N,) 0-based class indices.
        masks: uint8 (N, H, W) or None.
        keypoints: float32 (N, K, 2) xy pixels, or None.
        semantic: int64 (H, W) (0 background, k + 1 class k, 255 ignore), or None (then made from the masks).
        image_id: an integer id.
        iscrowd: bool (N,) crowd / difficult objects (evaluation ignores them), or None.
    """

    image: np.ndarray
    boxes: np.ndarray
    labels: np.ndarray
    masks: np.ndarray | None = None
    keypoints: np.ndarray | None = None
    semantic: np.ndarray | None = None
    image_id: int = 0
    iscrowd: np.ndarray | None = None


def semantic_from_masks(labels: np.ndarray, masks: np.ndarray | None, size: tuple[int, int]) -> np.ndarray:
    """int64 (H, W) class map from instance masks: 0 background, labels[i] + 1 where mask i is set (later wins)."""
    sem = np.zeros(size, np.int64)
    if masks is not None:
        for lab, m in zip(labels, masks, strict=True):
            sem[m.astype(bool)] = int(lab) + 1
    return sem


class DetectionDataset(Dataset):
    """Images with their objects, as tensors for training (see the module docstring for the sample format).

    Args:
        source: gives `classes`, `__len__` and `get(i) -> DetectionItem`; optional `flip_pairs`,
            `keypoint_names`, `name`.
        view: "detection", "localisation", "landmarks" (the same samples) or "semantic".
        transform: a `cnnkit.augment` transform applied to image, boxes, masks and landmarks together.
        size: letterbox every image to size x size (None keeps the size).
        masks: include instance masks in the target when the source has them.
    """

    def __init__(self, source, *, view: str = "detection", transform: Callable | None = None,
                 size: int | None = None, masks: bool = True):
        if view not in VIEWS:
            raise InputError(f"unknown view {view!r}; use one of {', '.join(VIEWS)}")
        self.source = source
        self.view = view
        self.transform = transform
        self.size = size
        self.with_masks = masks
        self.classes = list(source.classes)
        self.flip_pairs = tuple(getattr(source, "flip_pairs", ()))
        self.keypoint_names = tuple(getattr(source, "keypoint_names", ()))
        self.name = getattr(source, "name", type(source).__name__)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def semantic_classes(self) -> list[str]:
        """Class names of the semantic view: "background" first."""
        return ["background", *self.classes]

    def __len__(self) -> int:
        return len(self.source)

    def raw(self, i: int) -> DetectionItem:
        """Item i as the source gives it (uint8 image, numpy targets), before transform and letterbox."""
        return self.source.get(i)

    def boxes_and_size(self, i: int) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
        """(boxes float32 (N, 4), labels int64 (N,), (H, W)) of item i as the source has them, without decoding
        the image when the source can tell (annotation files, scenes): for anchor statistics over a data set."""
        fn = getattr(self.source, "boxes_and_size", None)
        if fn is not None:
            return fn(i)
        item = self.source.get(i)
        return item.boxes, item.labels, tuple(item.image.shape[:2])

    def reseed(self, seed: int) -> None:
        """Reseed the transform's generator: the training loop does this per sample from (seed, epoch, index), so
        a run resumed after kill -9 augments every image as the uninterrupted run did."""
        reseed = getattr(self.transform, "reseed", None)
        if reseed is not None:
            reseed(seed)

    def __getitem__(self, i: int):
        item = self.source.get(i)
        image = torch.from_numpy(np.require(item.image, requirements=["C", "W"])).permute(2, 0, 1).float().div_(255.0)
        h, w = image.shape[-2:]
        if self.view == "semantic":
            if item.semantic is None and item.masks is None and len(item.labels):
                raise InputError(f"{self.name}: image {item.image_id} has objects but no masks, so no class map can "
                                 "be made for the semantic view; use a source with masks or label PNGs")
            sem = item.semantic if item.semantic is not None else semantic_from_masks(item.labels, item.masks, (h, w))
            s = Sample(image, masks=torch.from_numpy(np.require(sem, np.int64, ["C", "W"])))
            if self.transform is not None:
                s = self.transform(s)
            if self.size:
                s, _ = letterbox_sample(s, self.size, mask_fill=IGNORE_INDEX)
            return s.image, s.masks.long()

        n = len(item.labels)
        masks = kps = None
        if self.with_masks and item.masks is not None:
            masks = torch.from_numpy(np.require(item.masks, np.uint8, ["C", "W"]))
        if item.keypoints is not None:
            kps = torch.from_numpy(np.require(item.keypoints, np.float32, ["C", "W"]))
            kps = kps.reshape(n, kps.shape[-2] if kps.ndim == 3 else 0, 2)
        s = Sample(image, boxes=torch.from_numpy(np.require(item.boxes, np.float32, ["C", "W"])).reshape(n, 4),
                   masks=masks if masks is None or n else None, landmarks=kps,
                   labels=torch.from_numpy(np.require(item.labels, np.int64, ["C", "W"])))
        if self.transform is not None:
            s = self.transform(s)
        if s.boxes is None or len(s.boxes) != n:
            raise InputError("the transform dropped boxes (SanitizeBoxes?): leave that out, DetectionDataset drops "
                             "boxes under 1 pixel itself, with their masks and keypoints")
        info = None
        if self.size:
            s, info = letterbox_sample(s, self.size, mask_fill=0)
        b = s.boxes
        keep = ((b[:, 2] - b[:, 0]) >= 1) & ((b[:, 3] - b[:, 1]) >= 1)
        target = {"boxes": b[keep].float(), "labels": s.labels[keep].long(), "image_id": int(item.image_id)}
        if masks is not None:
            oh, ow = s.image.shape[-2:]
            target["masks"] = s.masks[keep].to(torch.uint8) if s.masks is not None else torch.zeros(0, oh, ow,
                                                                                                   dtype=torch.uint8)
        if kps is not None:
            target["keypoints"] = s.landmarks[keep].float()
        if item.iscrowd is not None:
            target["iscrowd"] = torch.from_numpy(np.require(item.iscrowd, bool, ["C", "W"]))[keep]
        if info is not None:
            target["letterbox"] = info
        return s.image, target

    def __repr__(self) -> str:
        return f"DetectionDataset({self.name!r}, n={len(self)}, view={self.view!r}, classes={self.classes})"


def detection_collate(samples: list) -> tuple[torch.Tensor, list[dict]]:
    """Stack same-size images (B, C, H, W) and keep the targets as a list of dicts (for a DataLoader)."""
    shapes = {tuple(im.shape) for im, _ in samples}
    if len(shapes) > 1:
        raise InputError(f"images of a batch differ in size ({', '.join(map(str, sorted(shapes)[:3]))}); letterbox "
                         "them to one size (DetectionDataset(size=...), load_detection(letterbox=...))")
    images = torch.stack([im for im, _ in samples])
    return images, [t for _, t in samples]

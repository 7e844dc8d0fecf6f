"""The built-in `scenes` as data sets: `load_scenes` gives train/val/test `DetectionDataset`s.

    from cnnkit.data.scene_dataset import load_scenes
    parts = load_scenes(train=2000, val=300, test=300, size=128, seed=0, view="detection")
    image, target = parts["train"][0]      # (3, 128, 128) float, {"boxes", "labels", "masks", "keypoints", ...}

Scenes are generated once when the data set is made (about 2 ms each) and kept in memory as uint8 images and
instance maps; DataLoader workers share them, and the last three sets made are kept for the next call.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from tqdm.auto import tqdm

from cnnkit.data.detection_dataset import DetectionDataset, DetectionItem
from cnnkit.data.scenes import (
    FLIP_PAIRS,
    LANDMARK_NAMES,
    SPLIT_BASE,
    SceneConfig,
    make_scene,
    one_object_config,
)
from cnnkit.data.task_data import register_task_data
from cnnkit.errors import InputError


class SceneSource:
    """Scenes `indices` of `config`, generated up front.

    Attributes:
        config: the SceneConfig.
        indices: int64 (n,) scene indices (see `cnnkit.data.scenes.split_of`).
        classes, flip_pairs, keypoint_names, name: what DetectionDataset reads.
    """

    def __init__(self, config: SceneConfig, indices, *, progress: bool = True):
        self.config = config
        self.indices = np.asarray(indices, dtype=np.int64)
        self.classes = list(config.classes)
        self.flip_pairs = FLIP_PAIRS
        self.keypoint_names = LANDMARK_NAMES
        self.name = "scenes"
        n, s = len(self.indices), config.size
        self.images = np.empty((n, s, s, 3), np.uint8)
        self.instance_maps = np.empty((n, s, s), np.uint8)
        self.boxes, self.labels, self.landmarks, self.visibility = [], [], [], []
        bar = tqdm(self.indices, desc="making scenes", unit="scene", leave=False, disable=not progress or n < 3000)
        for j, idx in enumerate(bar):
            sc = make_scene(config, int(idx))
            self.images[j], self.instance_maps[j] = sc.image, sc.instance_map
            self.boxes.append(sc.boxes)
            self.labels.append(sc.labels)
            self.landmarks.append(sc.landmarks)
            self.visibility.append(sc.visibility)

    def __len__(self) -> int:
        return len(self.indices)

    def boxes_and_size(self, i: int):
        return self.boxes[i], self.labels[i], (self.config.size, self.config.size)

    def get(self, i: int) -> DetectionItem:
        labels = self.labels[i]
        inst = self.instance_maps[i]
        masks = (inst[None] == np.arange(1, len(labels) + 1, dtype=np.uint8)[:, None, None]).astype(np.uint8)
        lut = np.concatenate([[0], labels + 1]).astype(np.int64)
        return DetectionItem(self.images[i], self.boxes[i], labels, masks, self.landmarks[i], lut[inst],
                             int(self.indices[i]))


_CACHE: dict[tuple, SceneSource] = {}
_CACHE_SIZE = 3  # one train, val and test set: loading the same scenes again (evaluate after train) is free


def _cached_source(config: SceneConfig, split: str, n: int, progress: bool) -> SceneSource:
    key = (config, split, n)
    if key not in _CACHE:
        _CACHE[key] = SceneSource(config, SPLIT_BASE[split] + np.arange(n), progress=progress)
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.pop(next(iter(_CACHE)))
    return _CACHE[key]


def scene_config_for(view: str, **kw) -> SceneConfig:
    """The default SceneConfig of a view: one larger object for localisation and landmarks, 1-4 otherwise."""
    kw = {k: v for k, v in kw.items() if v is not None}
    if view in ("localisation", "landmarks"):
        return one_object_config(**kw)
    return SceneConfig(**kw)


@register_task_data("scenes")
def load_scenes(
    train: int = 2000,
    val: int = 300,
    test: int = 300,
    *,
    size: int = 128,
    seed: int = 0,
    view: str = "detection",
    classes=None,
    min_objects: int | None = None,
    max_objects: int | None = None,
    config: SceneConfig | None = None,
    transform: Callable | None = None,
    letterbox: int | None = None,
    masks: bool = True,
    progress: bool = True,
) -> dict[str, DetectionDataset]:
    """Train, val and test sets of built-in scenes (disjoint index ranges: held-out scenes are never trained on).

    Args:
        train, val, test: number of scenes in each split (0 leaves the split out).
        size: image side in pixels.
        seed: seed of the whole set (scene i of a split is the same for every count).
        view: "detection", "localisation" (one object), "landmarks" (one object) or "semantic".
        classes: object classes (default: the five shapes; add "0".."9" for digits).
        min_objects, max_objects: objects per scene (defaults 1..4, or 1 for localisation and landmarks).
        config: a full SceneConfig instead of size/seed/classes/min/max.
        transform: an augmentation applied to the train split only.
        letterbox: letterbox size (None: keep `size`).
        masks: include instance masks in detection targets.
        progress: show a bar while making many scenes.

    Returns:
        {"train": ..., "val": ..., "test": ...} DetectionDatasets (splits of size 0 left out).
    """
    if config is None:
        config = scene_config_for(view, size=size, seed=seed, classes=tuple(classes) if classes else None,
                                  min_objects=min_objects, max_objects=max_objects)
    out = {}
    for split, n in (("train", train), ("val", val), ("test", test)):
        if n is None or n == 0:
            continue
        if not isinstance(n, (int, np.integer)) or n < 0 or n > 1_000_000:
            raise InputError(f"{split} must be a number of scenes in [0, 1000000], got {n!r}")
        source = _cached_source(config, split, int(n), progress)
        out[split] = DetectionDataset(source, view=view, transform=transform if split == "train" else None,
                                      size=letterbox, masks=masks)
    return out

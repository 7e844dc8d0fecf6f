"""The segmentation task: per-pixel CE + Dice, mean IoU picks the best checkpoint, label PNGs and overlays out.

Data (`load_data`): the built-in "scenes" (semantic view: 0 background, k + 1 = shape k), a folder of images/
and labels/ (or masks/) PNGs with classes.txt or class_dict.csv (VOC, CamVid, Carla style: index, grey or RGB
masks, colours mapped through the palette), or COCO instance masks (a .json, or a folder with annotations/).
Samples are (image float (3, H, W) normalised with the training set's mean/std, int64 (H, W) class ids, 255
ignore); images of different sizes are letterboxed to `image_size` (padding ignored).

Prediction (`predict`): whole-image when it fits (`tile` pixels a side, default 1024), overlapping tiles
blended and stitched beyond, either way padded to the network's size rule and cropped back; `cnnkit predict
--out DIR` writes DIR/NAME.png (the overlay), DIR/NAME_labels.png (an index PNG, palette = overlay colours)
and DIR/NAME.json (the class fractions).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn as nn
from torch.utils.data import Dataset

from cnnkit.errors import InputError
from cnnkit.segment.losses import IGNORE_INDEX, SegmentationLoss
from cnnkit.segment.metrics import SegmentationMeter
from cnnkit.tasks.base import Task, register_task

DEFAULT_SCENES = {"train": 3000, "val": 300, "test": 300}  # 3000 x 12 epochs of batch 8: 4,500 steps; the whole
# `cnnkit train --model unet_small --data scenes` took 7 min 58 s on 2 idle cores, test mIoU 0.939 (README)
DEFAULT_AUGMENT = "flip"  # masks move with the image; the scenes' shapes look the same mirrored
SCENE_SIZE = 96  # scenes side: objects of 8-17 px radius, cheap enough to train on a CPU
TILE = 1024  # images with a side above this are predicted in tiles
CHECK_LIMIT = 5000  # file data sets up to this many images have every mask checked when loaded


class SegmentationDataset(Dataset):
    """(image, class map) pairs of a DetectionDataset's semantic view, normalised, with `classes` = the
    semantic classes (background first), and the attributes the trainer records (mean, std, image_size)."""

    def __init__(self, inner, mean, std, image_size: int | None) -> None:
        self.inner = inner
        self.classes = list(inner.semantic_classes)
        self.mean = [float(v) for v in mean]
        self.std = [float(v) for v in std]
        self.image_size = image_size
        self.in_chans = 3
        self._m = torch.tensor(self.mean).view(3, 1, 1)
        self._s = torch.tensor(self.std).view(3, 1, 1)

    @property
    def transform(self):
        return self.inner.transform

    @transform.setter
    def transform(self, value) -> None:
        self.inner.transform = value

    def __len__(self) -> int:
        return len(self.inner)

    def __getitem__(self, i: int):
        image, target = self.inner[i]
        if target.max() >= len(self.classes) and (target[target != IGNORE_INDEX] >= len(self.classes)).any():
            bad = int(target[target != IGNORE_INDEX].max())
            raise InputError(f"sample {i}: class id {bad} is beyond the {len(self.classes)} classes "
                             f"({', '.join(self.classes)})")
        return (image - self._m) / self._s, target

    def raw(self, i: int):
        return self.inner.raw(i)


def _mean_std(inner, n: int = 200) -> tuple[list[float], list[float]]:
    """Per-channel mean and std (of images in [0, 1]) over up to n evenly spread training images."""
    idx = np.linspace(0, len(inner) - 1, min(n, len(inner))).astype(int)
    pix = np.concatenate([inner.raw(int(i)).image.reshape(-1, 3)[::7] for i in idx]).astype(np.float64) / 255.0
    return pix.mean(0).tolist(), np.maximum(pix.std(0), 1e-3).tolist()


def _transform(opts: dict[str, Any], image_size: int | None):
    spec = opts.get("augment")
    spec = DEFAULT_AUGMENT if spec is None else spec
    if not spec or spec == "none":
        return None
    from cnnkit.augment import build_transform

    return build_transform(spec, image_size=image_size, seed=int(opts.get("seed") or 0))


def load_segmentation_data(source: str, opts: dict[str, Any]) -> dict[str, SegmentationDataset]:
    """train/val/test SegmentationDatasets of "scenes" or of label-PNG / COCO files (see the module docstring)."""
    meta = opts.get("meta") or {}
    size = opts.get("image_size") or (meta.get("input_size") or [None, None, None])[1]
    splits = list(opts.get("splits") or ("train", "val", "test"))
    if source == "scenes":
        from cnnkit.data.scene_dataset import load_scenes

        counts = {**DEFAULT_SCENES, **{k: int(v) for k, v in (opts.get("scene_counts") or {}).items()}}
        kw: dict[str, Any] = {s: (counts[s] if s in splits else 0) for s in ("train", "val", "test")}
        size = int(size or SCENE_SIZE)
        classes = opts.get("classes") or (meta.get("classes") or [])[1:] or None
        if classes:
            kw["classes"] = classes
        parts = load_scenes(view="semantic", size=size, seed=int(opts.get("split_seed") or 0), progress=False,
                            transform=_transform(opts, size) if "train" in splits else None, masks=False, **kw)
    else:
        from cnnkit.data.detection_files import load_detection

        size = int(size) if size else 256
        parts = load_detection(source, view="semantic", letterbox=size, strict=bool(opts.get("strict", False)),
                               seed=int(opts.get("split_seed") or 0), masks=True)
        parts = {k: v for k, v in parts.items() if k in splits}
        _check_masks(parts)
        if "train" in parts:
            parts["train"].transform = _transform(opts, size)
    if meta.get("mean") and meta.get("std"):
        mean, std = meta["mean"], meta["std"]
    elif "train" in parts and len(parts["train"]):
        mean, std = _mean_std(parts["train"])
    else:
        mean, std = [0.5] * 3, [0.25] * 3
    return {k: SegmentationDataset(v, mean, std, size) for k, v in parts.items()}


def _check_masks(parts: dict[str, Any], limit: int = CHECK_LIMIT) -> None:
    """Read every mask of a file data set once before training (up to `limit` images), so that a colour outside
    the palette or a class id beyond the classes stops the run at once with its one-line error, not mid-epoch."""
    total = sum(len(ds) for ds in parts.values())
    if total > limit:
        return
    for ds in parts.values():
        k = len(ds.semantic_classes)
        for i in range(len(ds)):
            item = ds.raw(i)  # raises FileFormatError on an unreadable mask or a colour outside the palette
            sem = item.semantic
            if sem is not None and sem.size:
                bad = (sem >= k) & (sem != IGNORE_INDEX)
                if bad.any():
                    y, x = np.argwhere(bad)[0]
                    raise InputError(f"image {i} of {ds.name}: class id {int(sem[y, x])} at pixel (x={x}, y={y}) "
                                     f"is beyond the {k} classes ({', '.join(ds.semantic_classes)})")


def label_palette(num_classes: int) -> np.ndarray:
    """uint8 (256, 3): class 0 black, class k the overlay colour of `cnnkit.viz.draw` (k - 1), 255 white."""
    from cnnkit.viz.draw import class_colour

    pal = np.zeros((256, 3), np.uint8)
    for k in range(1, min(num_classes, 255)):
        pal[k] = class_colour(k - 1)
    pal[255] = 255
    return pal


def overlay(image: np.ndarray, labels: np.ndarray, *, alpha: float = 0.5) -> np.ndarray:
    """(H, W, 3) uint8: `image` with every non-background class painted in its colour at `alpha`."""
    from cnnkit.viz.draw import draw_annotations

    return draw_annotations(image, {"semantic": labels}, scale=1.0, alpha=alpha)


@register_task
class SegmentationTask(Task):
    """Semantic segmentation: logits (B, K, H, W) against class maps (B, H, W) (255 ignored).

    Args:
        loss: the loss module (default `SegmentationLoss()`: cross-entropy + Dice, equal weights).
    """

    name: ClassVar[str] = "segmentation"
    best_metric: ClassVar[str] = "miou"
    loss_label: ClassVar[str] = "loss (CE + Dice)"
    main_train_stat: ClassVar[str | None] = "pixel_acc"
    # Telling the shapes apart (not just finding objects) takes thousands of steps: small batches buy them at
    # the same cost per image (batch 64 gave 63 steps an epoch and mIoU 0.19 after 3 epochs; on 1500 scenes
    # after 2 epochs: batch 16 lr 3e-3 0.28, batch 8 lr 2e-3 0.36, batch 8 lr 5e-3 0.44; the last reached 0.866
    # after 6 epochs, 1,125 steps; these defaults take 4,500).
    train_defaults: ClassVar[dict[str, Any]] = {"epochs": 12, "batch_size": 8, "lr": 5e-3, "optimizer": "adamw",
                                                "schedule": "cosine", "weight_decay": 5e-4,
                                                "warmup_epochs": 0.0}

    def __init__(self, loss: nn.Module | None = None) -> None:
        self.loss_fn = loss or SegmentationLoss()

    def configure(self, config: Any) -> None:
        smoothing = float(getattr(config, "label_smoothing", 0.0) or 0.0)
        if smoothing and isinstance(self.loss_fn, SegmentationLoss):
            self.loss_fn.label_smoothing = smoothing

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        return self.loss_fn(outputs, fit_targets(outputs, targets))

    def train_stats(self, outputs: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
        """{"pixel_acc": sum over the batch of each image's pixel accuracy}."""
        targets = fit_targets(outputs, targets)
        valid = targets != IGNORE_INDEX
        correct = ((outputs.detach().argmax(1) == targets) & valid).flatten(1).sum(1)
        return {"pixel_acc": float((correct / valid.flatten(1).sum(1).clamp(min=1)).sum())}

    def meter(self, model: nn.Module, data: Any) -> SegmentationMeter:
        from cnnkit.train.evaluation import dataset_of

        ds = dataset_of(data)
        classes = getattr(ds, "classes", None)
        inner = model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model
        k = getattr(inner, "num_classes", None) or (len(classes) if classes else None)
        if k is None:
            raise InputError("cannot tell the number of classes: the model has no num_classes, the data no classes")
        if classes is not None and len(classes) != k:
            raise InputError(f"the model predicts {k} classes but the data has {len(classes)} "
                             f"({', '.join(classes)}); train a model for this data")
        return _Meter(k, loss_fn=self.loss_fn, class_names=classes)

    def evaluate(self, model: nn.Module, data: Any, **opts: Any) -> dict[str, Any]:
        opts.pop("tta", None)  # flips of a label map are not implemented: whole-image evaluation
        return super().evaluate(model, data, **opts)

    def report(self, metrics: dict[str, Any]) -> str:
        """mIoU, pixel accuracy, mean Dice, then a per-class IoU / Dice table."""
        lines = []
        for key in ("miou", "pixel_accuracy", "mdice", "mean_accuracy", "loss"):
            if isinstance(metrics.get(key), float):
                lines.append(f"  {key:<15} {metrics[key]:.4f}")
        iou, dice = metrics.get("iou") or [], metrics.get("dice") or []
        names = metrics.get("classes") or [str(i) for i in range(len(iou))]
        if iou:
            width = max(5, *(len(str(n)) for n in names))
            lines.append(f"\n  {'class':<{width}}     IoU    Dice   pixels")
            cm = metrics.get("confusion_matrix") or []
            for k, (name, v, d) in enumerate(zip(names, iou, dice, strict=False)):
                px = sum(cm[k]) if k < len(cm) else 0
                lines.append(f"  {name:<{width}}  {_fmt(v)}  {_fmt(d)}  {px:7d}")
        return "\n".join(lines)

    # -- data and inference -----------------------------------------------------------------------------------
    def load_data(self, source: str, **opts: Any) -> dict[str, Dataset]:
        return load_segmentation_data(source, opts)

    def predict(self, model: nn.Module, image: np.ndarray, meta: dict[str, Any], **opts: Any) -> dict[str, Any]:
        """Class map of one (H, W, C) image at its own size: whole-image up to `tile` pixels a side, else tiled.

        Options: tile (default 1024), overlap (default tile // 4), batch_size (tiles per pass).
        Returns: {"size": [H, W], "classes": {name: fraction of pixels}, "tiled": bool, "labels": (H, W) array}
        ("labels" is left out of the JSON file; `cnnkit predict --out` writes it as NAME_labels.png).
        """
        from cnnkit.segment.tiling import predict_tiled

        image = _rgb(image, int(meta.get("in_chans", 3)))
        mean = torch.tensor(meta.get("mean") or [0.0] * image.shape[2]).view(-1, 1, 1)
        std = torch.tensor(meta.get("std") or [1.0] * image.shape[2]).view(-1, 1, 1)

        def prep(a: np.ndarray) -> torch.Tensor:
            x = torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1).float()
            return (x / 255.0 - mean) / std if a.dtype == np.uint8 else (x - mean) / std

        tile = int(opts.get("tile") or TILE)
        overlap = int(opts.get("overlap") or tile // 4)
        h, w = image.shape[:2]
        labels = predict_tiled(model, image, tile=tile, overlap=overlap, preprocess=prep,
                               batch_size=int(opts.get("batch_size") or 1))
        names = meta.get("classes") or [str(i) for i in range(int(labels.max()) + 1)]
        counts = np.bincount(labels.ravel(), minlength=len(names))
        return {"size": [h, w], "tiled": max(h, w) > tile,
                "classes": {str(n): round(float(c) / labels.size, 5) for n, c in zip(names, counts, strict=False)},
                "labels": labels}

    def render(self, image: np.ndarray, result: dict[str, Any], meta: dict[str, Any]) -> np.ndarray:
        """The image with each predicted class painted over it (background left as is)."""
        labels = result.get("labels")
        if labels is None:
            raise InputError("this result holds no label map to draw")
        return overlay(_rgb(image, 3), np.asarray(labels))

    def describe(self, result: dict[str, Any]) -> str:
        h, w = result["size"]
        parts = sorted(result["classes"].items(), key=lambda kv: -kv[1])
        shown = ", ".join(f"{n} {100 * f:.1f}%" for n, f in parts if f > 0)
        return f"{w}x{h}{' (tiled)' if result.get('tiled') else ''}: {shown}"

    def write_outputs(self, out_dir, name: str, result: dict[str, Any], meta: dict[str, Any]) -> None:
        """What `cnnkit predict --out` adds beside the overlay: NAME_labels.png, an index PNG of the class ids."""
        from pathlib import Path

        from cnnkit.data.labelpng import write_label_png

        labels = np.asarray(result["labels"])
        write_label_png(Path(out_dir) / f"{name}_labels.png", labels,
                        palette=label_palette(len(meta.get("classes") or []) or int(labels.max()) + 1))


def fit_targets(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The targets' centre cropped to the outputs' size: a "valid"-padding U-Net (the paper's) predicts only the
    inner part of its input, the label map of that part is what it is scored on."""
    if outputs.shape[-2:] == targets.shape[-2:]:
        return targets
    from cnnkit.models.unet import center_crop

    if outputs.shape[-2] > targets.shape[-2] or outputs.shape[-1] > targets.shape[-1]:
        raise InputError(f"the model's output {tuple(outputs.shape[-2:])} is larger than the label map "
                         f"{tuple(targets.shape[-2:])}")
    return center_crop(targets, outputs.shape[-2:])


def _fmt(x: float | None) -> str:
    return "     -" if x is None else f"{x:6.4f}"


def _rgb(image: np.ndarray, chans: int) -> np.ndarray:
    a = np.asarray(image)
    if a.ndim == 2:
        a = a[..., None]
    if a.shape[2] == 4:
        a = a[..., :3]
    if chans == 3 and a.shape[2] == 1:
        a = np.repeat(a, 3, axis=2)
    if chans == 1 and a.shape[2] == 3:
        a = (a.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32))[..., None].astype(a.dtype)
    return a


class _Meter(SegmentationMeter):
    """SegmentationMeter whose all_reduce goes through cnnkit's distributed helper (gloo and NCCL alike), and
    which scores a "valid" network on the centre of the label map its output covers."""

    def update(self, outputs: torch.Tensor, targets: torch.Tensor) -> None:
        super().update(outputs, fit_targets(outputs, targets))

    def all_reduce(self) -> None:
        from cnnkit.train.distributed import all_reduce_sum

        self.cm = all_reduce_sum(self.cm)
        self.loss_sum = all_reduce_sum(self.loss_sum)
        self.n = all_reduce_sum(self.n)

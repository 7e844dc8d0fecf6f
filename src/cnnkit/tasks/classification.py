"""Classification as a task: cross-entropy, accuracy picks the best checkpoint, top-k predictions."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import torch
import torch.nn.functional as F

from cnnkit.tasks.base import Task, register_task

if TYPE_CHECKING:
    import numpy as np
    import torch.nn as nn


class ClassificationMeterOf:
    """The classification Meter of a model on a data set: sums cross-entropy, counts the confusion matrix.

    The number of classes comes from the first batch's scores (checked against the data's classes), or, for an
    empty shard, from the data or the model's head, as `cnnkit.train.evaluation.run_eval` does.
    """

    def __init__(self, model: nn.Module, data: Any, topk: int = 5):
        self.model, self.data, self.topk = model, data, topk
        self.inner = None  # a cnnkit.train.metrics.ClassificationMeter once the class count is known

    def _ensure(self, num_classes: int) -> None:
        if self.inner is None:
            from cnnkit.train.metrics import ClassificationMeter

            self.inner = ClassificationMeter(num_classes, topk=self.topk)

    def update(self, outputs: torch.Tensor, targets: torch.Tensor) -> None:
        """Add a batch: logits (N, C) and class indices (N)."""
        scores = outputs.float()
        if self.inner is None:
            from cnnkit.train.evaluation import check_class_count

            check_class_count(self.data, scores.shape[1])
            self._ensure(scores.shape[1])
        loss_sum = F.cross_entropy(scores, targets, reduction="sum")
        self.inner.update(scores, targets, float(loss_sum))

    def all_reduce(self) -> None:
        if self.inner is None:
            from cnnkit.train.evaluation import num_outputs

            self._ensure(num_outputs(self.model, self.data, torch.device("cpu")))
        self.inner.all_reduce()

    def compute(self) -> dict[str, Any]:
        """accuracy, top5, per_class_accuracy, confusion_matrix, loss, n (see ClassificationMeter.compute)."""
        if self.inner is None:
            from cnnkit.train.evaluation import num_outputs

            self._ensure(num_outputs(self.model, self.data, torch.device("cpu")))
        return self.inner.compute()


@register_task
class ClassificationTask(Task):
    """One label per image: cross-entropy (with optional label smoothing), accuracy, top-k predictions.

    Args:
        label_smoothing: cross-entropy label smoothing; None: the TrainConfig's (see `configure`).
    """

    name: ClassVar[str] = "classification"
    best_metric: ClassVar[str] = "accuracy"
    history_key: ClassVar[str] = "acc"
    main_train_stat: ClassVar[str] = "acc"
    loss_label: ClassVar[str] = "loss (cross-entropy)"

    def __init__(self, label_smoothing: float | None = None):
        self.label_smoothing = label_smoothing

    def configure(self, config: Any) -> None:
        if self.label_smoothing is None:
            self.label_smoothing = float(getattr(config, "label_smoothing", 0.0))

    def check_data(self, train_data: Any, source: str) -> None:
        """A classifier needs at least two classes."""
        from cnnkit.errors import InputError

        classes = getattr(train_data, "classes", None)
        if classes is not None and len(classes) < 2:
            raise InputError(f"{source} holds one class ({', '.join(map(str, classes)) or 'none'}): a classifier "
                             "needs at least two; add a sub-folder per class")

    def check_model(self, model: nn.Module, train_data: Any, model_name: str) -> None:
        """One forward pass on the first two training images, so a size the model cannot take is one line in
        `cnnkit train`'s terms (--image-size, --in-chans) before any training, not a RuntimeError in epoch 1."""
        from cnnkit.errors import InputError
        from cnnkit.models.probe import forward_error

        x = torch.stack([train_data[i][0] for i in range(min(2, len(train_data)))])
        was_training = model.training
        model.eval()
        try:
            error = forward_error(model, x)
        finally:
            model.train(was_training)
        if error is not None:
            c, h, w = x.shape[1:]
            own = getattr(model, "default_input_size", None)
            hint = f"; try --image-size {own[1]}" + (f" --in-chans {own[0]}" if own[0] != c else "") if own else ""
            raise InputError(f"{model_name} cannot take {h}x{w} images with {c} channel(s) ({error[:140]}){hint}")

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        return F.cross_entropy(outputs.float(), targets, label_smoothing=self.label_smoothing or 0.0), {}

    def train_stats(self, outputs: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
        return {"acc": float(int((outputs.argmax(dim=1) == targets).sum()))}

    def meter(self, model: nn.Module, data: Any) -> ClassificationMeterOf:
        return ClassificationMeterOf(model, data)

    def history_metrics(self, metrics: dict[str, Any] | None) -> dict[str, Any]:
        # the two columns classification always had (top-5 and the confusion matrix stay in metrics.json)
        if metrics is None:
            return {"val_loss": None, "val_acc": None}
        return {"val_loss": metrics["loss"], "val_acc": metrics["accuracy"]}

    def evaluate(self, model: nn.Module, data: Any, **opts: Any) -> dict[str, Any]:
        """`cnnkit.train.evaluate` (accuracy, top-5, per class, confusion matrix; opts: batch_size, tta ...)."""
        from cnnkit.train.evaluation import evaluate

        return evaluate(model, data, **opts)

    def report(self, metrics: dict[str, Any]) -> str:
        lines = [f"  {key:<9} {metrics[key]:.4f}" for key in ("accuracy", "top5", "loss")
                 if isinstance(metrics.get(key), float)]
        classes = metrics.get("classes") or []
        per_class, confusion = metrics.get("per_class_accuracy"), metrics.get("confusion_matrix")
        if per_class and confusion:
            names = classes or [str(i) for i in range(len(per_class))]
            width = max(5, *(len(c) for c in names))
            lines.append(f"\n  {'class':<{width}}  accuracy   n  (rows: true class; columns: predicted)")
            for name, acc, row in zip(names, per_class, confusion, strict=False):
                shown = "   -  " if acc is None else f"{acc:.4f}"
                lines.append(f"  {name:<{width}}  {shown}  {sum(row):>4}  {' '.join(f'{v:>3}' for v in row)}")
        return "\n".join(lines)

    # -- data and inference -----------------------------------------------------------------------------------
    def load_data(self, source: str, **opts: Any) -> dict[str, Any]:
        """train/val/test of a folder, CSV or built-in set, 15% val and 15% test per class unless the source
        has its own splits; val and test normalised with the train split's mean/std.

        Options: image_size, in_chans (default 3), split_seed, strict, augment (spec for the train split),
        seed (of the augmentation), splits (which to load), meta (a model file's metadata: load as it expects).
        """
        from cnnkit.train.runs import data_for_checkpoint, load_split

        splits = list(opts.get("splits") or ("train", "val", "test"))
        meta = opts.get("meta")
        if meta is not None:
            return {s: data_for_checkpoint(meta, source, s, split_seed=opts.get("split_seed"),
                                           strict=bool(opts.get("strict", False)),
                                           checkpoint=opts.get("checkpoint", "the checkpoint")) for s in splits}
        kw = {"image_size": opts.get("image_size"), "in_chans": int(opts.get("in_chans") or 3),
              "split_seed": int(opts.get("split_seed") or 0), "strict": bool(opts.get("strict", False))}
        train = load_split(source, "train", **kw)
        out = {"train": train}
        for s in splits:
            if s != "train":
                out[s] = load_split(source, s, mean=train.mean, std=train.std, **kw)
        if opts.get("augment"):
            from cnnkit.augment import build_transform

            train.transform = build_transform(opts["augment"], image_size=train.image_size,
                                              seed=int(opts.get("seed") or 0))
        return out

    def predict(self, model: nn.Module, image: np.ndarray, meta: dict[str, Any], **opts: Any) -> dict[str, Any]:
        """Top-k classes of one image (H, W, C) uint8 (or float in [0, 1]). Option: topk (default 5)."""
        return self._top(model, _to_input(image, meta), meta, int(opts.get("topk") or 5))[0]

    def predict_files(self, model: nn.Module, paths: list[str], meta: dict[str, Any],
                      **opts: Any) -> list[dict[str, Any]]:
        """Top-k classes of image files, decoded and resized as cnnkit's image folders are (one batch)."""
        return self._top(model, preprocess_files(paths, meta), meta, int(opts.get("topk") or 5))

    @staticmethod
    def _top(model: nn.Module, x: torch.Tensor, meta: dict[str, Any], k: int) -> list[dict[str, Any]]:
        with torch.no_grad():
            probs = torch.softmax(model(x).float(), dim=1)
        classes = meta.get("classes") or [str(i) for i in range(probs.shape[1])]
        top = probs.topk(min(k, probs.shape[1]), dim=1)
        return [{"predictions": [{"class": classes[i], "probability": round(v, 6)}
                                 for v, i in zip(values, indices, strict=True)]}
                for values, indices in zip(top.values.tolist(), top.indices.tolist(), strict=True)]

    def describe(self, result: dict[str, Any]) -> str:
        return ", ".join(f"{p['class']} {p['probability']:.3f}" for p in result["predictions"])

    def render(self, image: np.ndarray, result: dict[str, Any], meta: dict[str, Any]) -> np.ndarray:
        """The image (RGB) with a banner naming the most likely class and its probability."""
        import numpy as np
        from PIL import Image, ImageDraw

        img = _as_uint8_rgb(image)
        scale = max(1, 256 // max(img.shape[:2]))  # small images (digits) are enlarged so the text fits
        pic = Image.fromarray(img).resize((img.shape[1] * scale, img.shape[0] * scale), Image.NEAREST)
        best = result["predictions"][0]
        canvas = Image.new("RGB", (max(pic.width, 160), pic.height + 18), (255, 255, 255))
        canvas.paste(pic, (0, 18))
        ImageDraw.Draw(canvas).text((3, 3), f"{best['class']} {best['probability']:.3f}", fill=(0, 0, 0))
        return np.asarray(canvas)


def _as_uint8_rgb(image: np.ndarray) -> np.ndarray:
    import numpy as np

    a = np.asarray(image)
    if a.dtype != np.uint8:
        a = (np.clip(a.astype(np.float64), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    if a.ndim == 2:
        a = a[:, :, None]
    return np.repeat(a, 3, axis=2) if a.shape[2] == 1 else a[:, :, :3]


def _to_input(image: np.ndarray, meta: dict[str, Any]) -> torch.Tensor:
    """One image (H, W, C) as the model's input (1, C, H, W): channels, size and normalisation of `meta`."""
    import numpy as np
    from PIL import Image

    c, h, w = (meta.get("input_size") or [3, None, None])[:3]
    img = Image.fromarray(_as_uint8_rgb(image)).convert("L" if c == 1 else "RGB")
    if h is not None:
        img = img.resize((w, h), Image.BILINEAR)
    a = np.asarray(img)
    return _normalise(np.stack([a[:, :, None] if a.ndim == 2 else a]), meta, c)


def _normalise(arrays, meta: dict[str, Any], c: int) -> torch.Tensor:
    x = torch.from_numpy(arrays).permute(0, 3, 1, 2).float().div_(255.0)  # (N, C, H, W)
    mean = torch.tensor(meta.get("mean") or [0.0] * c).view(1, -1, 1, 1)
    std = torch.tensor(meta.get("std") or [1.0] * c).view(1, -1, 1, 1)
    return (x - mean) / std


def preprocess_files(paths: list[str], meta: dict[str, Any]) -> torch.Tensor:
    """Image files as the model's input batch (N, C, H, W): decoded and resized the way training data was.

    Raises:
        MissingFileError, FileFormatError: a path is missing or not a readable image (named in the message).
    """
    import numpy as np
    from PIL import Image

    from cnnkit.data.dataset import FileStore
    from cnnkit.io import read_image, require_file

    c, h, w = (meta.get("input_size") or [3, None, None])[:3]
    files = [require_file(p) for p in paths]
    if h is not None and h == w:
        store = FileStore(files, c, h)  # the decoder cnnkit's image folders use, so inputs match training's
        arrays = [store.read(i) for i in range(len(files))]
    else:
        arrays = []
        for f in files:
            img = Image.fromarray(read_image(f, mode="L" if c == 1 else "RGB"))
            if h is not None:
                img = img.resize((w, h), Image.BILINEAR)
            a = np.asarray(img)
            arrays.append(a[:, :, None] if a.ndim == 2 else a)
    return _normalise(np.stack(arrays), meta, c)

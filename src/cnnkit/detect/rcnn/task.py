"""The "rcnn" task: detection with a region-proposal detector (Faster / Fast R-CNN, R-CNN). Data, COCO mAP,
reports, drawing and `cnnkit predict` outputs are the detection task's; the loss is the model's own (RPN and
head losses, torchvision's names), since sampling proposals needs the targets inside the model."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch

from cnnkit.detect.task import EVAL_SCORE_THRESHOLD, DetectionTask, _dataset, _opt, _to_float_chw, detection_map
from cnnkit.errors import InputError
from cnnkit.tasks.base import register_task


def one_based(targets: list[dict]) -> list[dict]:
    """cnnkit's 0-based labels -> the 1-based labels of the R-CNN heads (0 is the background)."""
    return [{"boxes": t["boxes"], "labels": t["labels"] + 1} for t in targets]


@register_task
class RCNNTask(DetectionTask):
    """Detection with a region-proposal model; COCO mAP@[.5:.95] picks the best checkpoint."""

    name: ClassVar[str] = "rcnn"
    loss_label: ClassVar[str] = "loss (RPN + Fast R-CNN head)"
    # measured on the scenes with faster_rcnn_darknet_tiny (README: Region proposals)
    train_defaults: ClassVar[dict[str, Any]] = {"epochs": 12, "batch_size": 16, "lr": 2e-3, "optimizer": "adamw",
                                                "schedule": "cosine", "warmup_epochs": 0.5, "weight_decay": 1e-4,
                                                "grad_clip": 10.0}

    def __init__(self, *, score_threshold: float = 0.25, iou_threshold: float = 0.5, max_detections: int = 100):
        self.score_threshold, self.iou_threshold, self.max_detections = score_threshold, iou_threshold, max_detections
        self.model = None

    def bind(self, model) -> None:
        self.model = getattr(model, "module", model)

    def _bound(self):
        if self.model is None or not hasattr(self.model, "compute_loss"):
            raise InputError("the rcnn task is not bound to an R-CNN model: use task_for_model(model)")
        return self.model

    def loss(self, outputs, targets: list[dict]) -> tuple[torch.Tensor, dict[str, float]]:
        parts = self._bound().compute_loss(outputs, one_based(targets))
        total = sum(parts.values())
        return total, {k.removeprefix("loss_"): float(v.detach()) for k, v in parts.items()}

    def model_kwargs(self, train, *, verbose: bool = True, **_: Any) -> dict[str, Any]:
        return {"num_classes": len(train.classes)}

    def meter(self, model, data) -> RCNNMeter:
        self.bind(model)
        return RCNNMeter(self.model, classes=list(getattr(_dataset(data), "classes", []) or []))

    def predict(self, model, image: np.ndarray, meta: dict[str, Any], **opts: Any) -> dict[str, Any]:
        """Detections in one image (H, W, C) at its own size. Options: score_threshold (conf), iou_threshold
        (iou), max_detections."""
        x = _to_float_chw(image)
        model.eval()
        with torch.no_grad():
            raw = model.forward_raw(x[None])
            det = model.detect_raw(raw, score_thresh=float(_opt(opts, "score_threshold",
                                                                _opt(opts, "conf", self.score_threshold))),
                                   nms_thresh=float(_opt(opts, "iou_threshold", _opt(opts, "iou", self.iou_threshold))),
                                   detections_per_img=int(_opt(opts, "max_detections", self.max_detections)))[0]
        classes = meta.get("classes") or [str(i) for i in range(model.num_classes)]
        return {"detections": [{"class": classes[int(c) - 1], "class_id": int(c) - 1, "score": round(float(s), 5),
                                "box": [round(float(v), 2) for v in b]}
                               for b, s, c in zip(det["boxes"], det["scores"], det["labels"], strict=True)]}


class RCNNMeter:
    """Decoded detections of a data set (scores down to 0.001) -> COCO mAP."""

    def __init__(self, model, classes: list[str]):
        self.model, self.classes = model, classes
        self.preds: list[dict] = []
        self.gts: list[dict] = []
        self.n = 0

    def update(self, outputs, targets: list[dict]) -> None:
        dets = self.model.detect_raw(outputs, score_thresh=EVAL_SCORE_THRESHOLD)
        for d, t in zip(dets, targets, strict=True):
            self.preds.append({"boxes": d["boxes"].detach().cpu(), "scores": d["scores"].detach().cpu(),
                               "labels": d["labels"].detach().cpu() - 1})
            self.gts.append({"boxes": t["boxes"].detach().cpu(), "labels": t["labels"].detach().cpu()})
        self.n += len(targets)

    def all_reduce(self) -> None:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            gathered: list = [None] * dist.get_world_size()
            dist.all_gather_object(gathered, (self.preds, self.gts, self.n))
            self.preds = [p for g in gathered for p in g[0]]
            self.gts = [p for g in gathered for p in g[1]]
            self.n = sum(g[2] for g in gathered)

    def compute(self) -> dict[str, Any]:
        out = detection_map(self.preds, self.gts, self.classes or None)
        out["n"] = self.n
        return out

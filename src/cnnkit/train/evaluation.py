"""Measuring a classifier: `evaluate` (accuracy, top-5, per-class accuracy, confusion matrix, loss, test-time
augmentation). The pass for any task (`evaluate_task`, and `run_task_eval`, which `fit` validates with, sharded
over the ranks under torchrun) lives in `cnnkit.tasks.evaluation`, below the loop; its names are re-exported here."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from cnnkit.errors import InputError
from cnnkit.tasks.evaluation import (
    dataset_of,
    eval_loader,
    evaluate_task,
    run_task_eval,
    seed_worker,
    to_device,
    unwrap,
)
from cnnkit.train.metrics import ClassificationMeter

__all__ = ["check_class_count", "dataset_of", "eval_loader", "evaluate", "evaluate_task", "num_outputs", "run_eval",
           "run_task_eval", "seed_worker", "to_device", "unwrap"]


def check_class_count(data, num_outputs: int) -> None:
    """Raise InputError naming both counts when the data's classes do not match the model's outputs."""
    classes = getattr(dataset_of(data), "classes", None)
    if classes is not None and len(classes) != num_outputs:
        raise InputError(f"the model predicts {num_outputs} classes but the data has {len(classes)}; "
                         "use a checkpoint trained on this data (or retrain with --weights to replace the head)")


@torch.no_grad()
def run_eval(model: nn.Module, data, *, batch_size: int, device: torch.device, tta: str | None = None,
              bf16: bool = False, channels_last: bool = False, num_workers: int = 0,
              shard: bool = False) -> ClassificationMeter:
    was_training = model.training
    model.eval()
    meter = None
    try:
        for x, y in eval_loader(data, batch_size, num_workers, shard):
            x, y = to_device(x, device, channels_last), y.to(device)
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=bf16):
                if tta is None:
                    scores = model(x).float()
                    loss_sum = F.cross_entropy(scores, y, reduction="sum")
                else:
                    from cnnkit.train.tta import predict_tta

                    scores = predict_tta(model, x, tta).float()  # probabilities averaged over the views
                    loss_sum = F.nll_loss(scores.clamp_min(1e-12).log(), y, reduction="sum")
            if meter is None:
                check_class_count(data, scores.shape[1])
                meter = ClassificationMeter(scores.shape[1])
            meter.update(scores, y, float(loss_sum))
    finally:
        model.train(was_training)
    if meter is None:  # this rank's shard (or the data) is empty: counters of the right size, all zero
        meter = ClassificationMeter(num_outputs(model, data, device))
    return meter


def num_outputs(model: nn.Module, data, device: torch.device) -> int:
    classes = getattr(dataset_of(data), "classes", None)
    if classes is not None:
        return len(classes)
    head = getattr(unwrap(model), "get_classifier", None)
    out = getattr(head(), "out_features", None) if head else None
    if out is None:
        raise InputError("cannot evaluate on empty data: no samples to evaluate")
    return int(out)


def evaluate(model: nn.Module, data, *, batch_size: int = 64, tta: str | None = None, device: str | None = None,
             bf16: bool = False, channels_last: bool = False, num_workers: int = 0) -> dict[str, Any]:
    """Classification metrics of `model` on `data`.

    Args:
        model: a classifier returning logits (N, C).
        data: a Dataset yielding (image Tensor (C, H, W), int label), or a DataLoader of such batches.
        batch_size: images per forward pass (ignored for a DataLoader).
        tta: None, or a test-time augmentation mode of `cnnkit.train.tta.predict_tta` ("flip", "10crop").
        device: where to run; default: where the model's parameters are.
        bf16: bfloat16 autocast.
        channels_last: feed NHWC tensors.
        num_workers: DataLoader workers.

    Returns:
        accuracy, top5, per_class_accuracy (list; None for a class without samples), confusion_matrix (list of
        lists, rows = true class, columns = predicted), loss (mean cross-entropy; NLL of the averaged
        probabilities under TTA), n; and classes (names) when the data has them.

    Raises:
        InputError: the data has a different number of classes than the model predicts.
    """
    if device is None:
        p = next(unwrap(model).parameters(), None)
        dev = p.device if p is not None else torch.device("cpu")
    else:
        dev = torch.device(device)
    meter = run_eval(model, data, batch_size=batch_size, device=dev, tta=tta, bf16=bf16,
                      channels_last=channels_last, num_workers=num_workers)
    result = meter.compute()
    classes = getattr(dataset_of(data), "classes", None)
    if classes is not None:
        result["classes"] = list(classes)
    return result

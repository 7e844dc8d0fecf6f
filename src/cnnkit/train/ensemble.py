"""Ensembles: average the class probabilities of several models (optionally each under test-time augmentation).

    probs = ensemble_predict([m1, m2, m3], test_ds, tta="flip")        # (N, K)
    report = evaluate_ensemble(["a/best.safetensors", "b/best.safetensors"], test_ds, tta="10crop")
    print(report["members"], report["cumulative"], report["ensemble_accuracy"])

The average is of softmax probabilities (not of logits), member by member, in the data's order.
"""

from __future__ import annotations

import os
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader

from cnnkit.errors import InputError
from cnnkit.train.tta import predict_tta

Member = nn.Module | str | os.PathLike


def _batches(data, batch_size: int):
    """(images, labels or None) batches, in order, of a Tensor (N, C, H, W), a Dataset or a DataLoader."""
    if isinstance(data, torch.Tensor):
        if data.ndim != 4:
            raise InputError(f"images must be (N, C, H, W), got shape {tuple(data.shape)}")
        for i in range(0, len(data), batch_size):
            yield data[i:i + batch_size], None
        return
    loader = data if isinstance(data, DataLoader) else DataLoader(data, batch_size=batch_size, shuffle=False)
    for x, y in loader:
        yield x, torch.as_tensor(y, dtype=torch.int64)


@torch.no_grad()
def predict_probs(model: nn.Module, data, *, tta: str | None = None,
                  batch_size: int = 64) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Probabilities of one model on every sample of `data`, in order.

    Returns:
        probs (N, K) float32 and labels (N,) int64 (None when `data` is a bare image tensor).
    """
    device = next(model.parameters()).device
    probs, labels = [], []
    for x, y in _batches(data, batch_size):
        probs.append(predict_tta(model, x.to(device), tta).cpu())
        if y is not None:
            labels.append(y)
    if not probs:
        raise InputError("no samples to predict")
    return torch.cat(probs), (torch.cat(labels) if labels else None)


def _load(member: Member) -> tuple[nn.Module, str, dict[str, Any]]:
    if isinstance(member, nn.Module):
        return member, type(member).__name__, {}
    from cnnkit.checkpoint import load_model_file

    model, meta = load_model_file(member)
    return model, str(member), meta


def _check_compatible(metas: list[dict[str, Any]], names: list[str]) -> None:
    """Members must predict the same classes and expect the same input, or their average means nothing."""
    for key in ("classes", "input_size", "mean", "std"):
        values = [(n, m[key]) for n, m in zip(names, metas, strict=True) if m.get(key) is not None]
        if len({repr(v) for _, v in values}) > 1:
            (n0, v0), (n1, v1) = values[0], next(x for x in values if x[1] != values[0][1])
            raise InputError(f"ensemble members disagree on {key}: {n0} has {v0}, {n1} has {v1}; "
                             "average only models trained on the same classes and data")


def ensemble_predict(models: list[Member], data, *, tta: str | None = None, batch_size: int = 64) -> torch.Tensor:
    """The mean over members of their softmax probabilities (each under `tta`, see `predict_tta`).

    Args:
        models: nn.Modules and/or cnnkit model files (loaded with `load_model_file`).
        data: images (N, C, H, W), or a Dataset/DataLoader of (image, label), normalised for the members.
        tta: None, "flip" or "10crop".
        batch_size: images per forward pass.

    Returns:
        (N, K) float32 probabilities.
    """
    if not models:
        raise InputError("an ensemble needs at least one model")
    loaded = [_load(m) for m in models]
    _check_compatible([meta for _, _, meta in loaded], [name for _, name, _ in loaded])
    total = None
    for model, name, _ in loaded:
        probs, _ = predict_probs(model, data, tta=tta, batch_size=batch_size)
        if total is not None and probs.shape != total.shape:
            raise InputError(f"{name} predicts {probs.shape[1]} classes, the first member {total.shape[1]}")
        total = probs if total is None else total + probs
    return total / len(loaded)


def _accuracy(probs: torch.Tensor, labels: torch.Tensor) -> float:
    return float((probs.argmax(dim=1) == labels).float().mean())


def evaluate_ensemble(checkpoints: list[Member], data, *, tta: str | None = None,
                      batch_size: int = 64) -> dict[str, Any]:
    """The ensemble's metrics (as `cnnkit.train.evaluate` gives them), each member's accuracy, and what each
    added member and test-time augmentation add.

    Args:
        checkpoints: cnnkit model files (or nn.Modules), in the order they join the ensemble.
        data: a Dataset or DataLoader of (image, label), normalised as the members expect.
        tta: None, "flip" or "10crop"; when given, accuracies are reported with and without it.
        batch_size: images per forward pass.

    Returns:
        The averaged prediction's accuracy, top5, per_class_accuracy, confusion_matrix, loss (NLL of the
        averaged probabilities) and n; tta; members: one dict per member (checkpoint, accuracy, accuracy_tta);
        cumulative: accuracy of the ensemble of the first k members, k = 1..M (with TTA when given);
        cumulative_plain and accuracy_plain: the same without TTA; classes when the members have them.
    """
    from cnnkit.train.metrics import ClassificationMeter

    if not checkpoints:
        raise InputError("evaluate_ensemble needs at least one checkpoint")
    loaded = [_load(m) for m in checkpoints]
    _check_compatible([meta for _, _, meta in loaded], [name for _, name, _ in loaded])
    members, plain_sum, tta_sum = [], None, None
    cumulative, cumulative_plain = [], []
    labels = None
    for k, (model, name, _) in enumerate(loaded, start=1):
        plain, labels = predict_probs(model, data, tta=None, batch_size=batch_size)
        if labels is None:
            raise InputError("evaluate_ensemble needs labelled data (a Dataset of (image, label))")
        if plain_sum is not None and plain.shape != plain_sum.shape:
            raise InputError(f"{name} predicts {plain.shape[1]} classes, the first member {plain_sum.shape[1]}")
        plain_sum = plain if plain_sum is None else plain_sum + plain
        entry = {"checkpoint": name, "accuracy": _accuracy(plain, labels), "accuracy_tta": None}
        cumulative_plain.append(_accuracy(plain_sum / k, labels))
        if tta is not None:
            with_tta, _ = predict_probs(model, data, tta=tta, batch_size=batch_size)
            tta_sum = with_tta if tta_sum is None else tta_sum + with_tta
            entry["accuracy_tta"] = _accuracy(with_tta, labels)
            cumulative.append(_accuracy(tta_sum / k, labels))
        members.append(entry)
    probs = (tta_sum if tta is not None else plain_sum) / len(loaded)
    meter = ClassificationMeter(probs.shape[1])
    meter.update(probs, labels, float(F.nll_loss(probs.clamp_min(1e-12).log(), labels, reduction="sum")))
    report: dict[str, Any] = {
        **meter.compute(),
        "tta": tta,
        "members": members,
        "cumulative": cumulative if tta is not None else cumulative_plain,
        "cumulative_plain": cumulative_plain,
        "accuracy_plain": cumulative_plain[-1],
    }
    classes = next((meta["classes"] for _, _, meta in loaded if meta.get("classes")), None)
    if classes is not None:
        report["classes"] = list(classes)
    return report


def format_report(report: dict[str, Any]) -> str:
    """A small text table of `evaluate_ensemble`'s result."""
    tta = report["tta"]
    lines = [f"{'member':<40} {'acc':>8}" + (f" {'acc+' + tta:>12}" if tta else "") + f" {'ensemble of 1..k':>17}"]
    for i, m in enumerate(report["members"]):
        row = f"{m['checkpoint'][-40:]:<40} {m['accuracy']:>8.4f}"  # the end of a path tells runs apart
        if tta:
            row += f" {m['accuracy_tta']:>12.4f}"
        lines.append(row + f" {report['cumulative'][i]:>17.4f}")
    lines.append(f"ensemble of {len(report['members'])}: accuracy {report['accuracy']:.4f} on {report['n']} images"
                 + (f" (without {tta}: {report['accuracy_plain']:.4f})" if tta else ""))
    return "\n".join(lines)

"""Metrics against plain Python loops on random logits."""

import math

import pytest
import torch

from cnnkit.errors import InputError
from cnnkit.train.metrics import ClassificationMeter, classification_metrics, confusion_matrix, topk_correct


def _reference(scores: torch.Tensor, targets: torch.Tensor, k: int = 5) -> dict:
    rows = scores.tolist()
    ts = targets.tolist()
    c = len(rows[0])
    conf = [[0] * c for _ in range(c)]
    hits = 0
    for row, t in zip(rows, ts, strict=True):
        pred = max(range(c), key=lambda j: row[j])
        conf[t][pred] += 1
        ranked = sorted(range(c), key=lambda j: -row[j])
        hits += t in ranked[: min(k, c)]
    per_class = []
    for t in range(c):
        total = sum(conf[t])
        per_class.append(conf[t][t] / total if total else None)
    n = len(ts)
    return {"accuracy": sum(conf[i][i] for i in range(c)) / n, "top5": hits / n, "per_class_accuracy": per_class,
            "confusion_matrix": conf, "n": n}


@pytest.mark.parametrize("n,c", [(1, 3), (57, 10), (200, 7), (40, 4)])
def test_metrics_match_python_loops(n, c):
    g = torch.Generator().manual_seed(n * 31 + c)
    scores = torch.randn(n, c, generator=g)
    targets = torch.randint(0, c, (n,), generator=g)
    if c == 7:
        targets[targets == 3] = 0  # a class without samples: its accuracy is None
    got = classification_metrics(scores, targets)
    ref = _reference(scores, targets)
    for key in ("confusion_matrix", "per_class_accuracy", "n"):
        assert got[key] == ref[key], key
    assert got["accuracy"] == pytest.approx(ref["accuracy"])
    assert got["top5"] == pytest.approx(ref["top5"])
    assert math.isnan(got["loss"])  # no loss given


def test_top5_differs_from_top1_and_caps_at_class_count():
    g = torch.Generator().manual_seed(1)
    scores = torch.randn(500, 20, generator=g)
    targets = torch.randint(0, 20, (500,), generator=g)
    assert topk_correct(scores, targets, 1) < topk_correct(scores, targets, 5) < 500
    assert topk_correct(scores[:, :3], targets.clamp(max=2), 5) == 500  # k above C means "any class"


def test_batched_accumulation_equals_all_at_once():
    g = torch.Generator().manual_seed(2)
    scores = torch.randn(123, 6, generator=g)
    targets = torch.randint(0, 6, (123,), generator=g)
    losses = torch.nn.functional.cross_entropy(scores, targets, reduction="none")
    meter = ClassificationMeter(6)
    for s in range(0, 123, 17):
        meter.update(scores[s:s + 17], targets[s:s + 17], float(losses[s:s + 17].sum()))
    whole = classification_metrics(scores, targets, loss_sum=float(losses.sum()))
    got = meter.compute()
    assert got["confusion_matrix"] == whole["confusion_matrix"]
    assert got["top5"] == whole["top5"]
    assert got["loss"] == pytest.approx(float(losses.mean()), rel=1e-6)


def test_confusion_rows_are_true_classes():
    cm = confusion_matrix(torch.tensor([1, 1, 0]), torch.tensor([0, 1, 1]), 2)
    assert cm.tolist() == [[0, 1], [1, 1]]


def test_label_outside_model_classes_is_refused():
    meter = ClassificationMeter(3)
    with pytest.raises(InputError, match="3 classes"):
        meter.update(torch.randn(2, 3), torch.tensor([0, 5]))

"""Segmentation metrics and losses against slow, obviously correct references on random label maps."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from cnnkit.segment.losses import SegmentationLoss, cross_entropy, dice_loss
from cnnkit.segment.metrics import SegmentationMeter, confusion_matrix, scores_from_confusion

IGNORE = 255


def _slow_scores(pred: np.ndarray, target: np.ndarray, k: int):
    """Pixel by pixel counts, then IoU/Dice per class by their definitions; classes in neither are skipped."""
    tp, fp, fn = [0] * k, [0] * k, [0] * k
    correct = total = 0
    for p, t in zip(pred.ravel().tolist(), target.ravel().tolist(), strict=True):
        if t == IGNORE:
            continue
        total += 1
        if p == t:
            correct += 1
            tp[t] += 1
        else:
            fn[t] += 1
            if 0 <= p < k:
                fp[p] += 1
    iou = [tp[c] / (tp[c] + fp[c] + fn[c]) if tp[c] + fp[c] + fn[c] else None for c in range(k)]
    dice = [2 * tp[c] / (2 * tp[c] + fp[c] + fn[c]) if tp[c] + fp[c] + fn[c] else None for c in range(k)]
    present = [v for v in iou if v is not None]
    return {"pixel_accuracy": correct / total if total else math.nan, "iou": iou, "dice": dice,
            "miou": sum(present) / len(present) if present else math.nan}


def _random_maps(seed, k, shape=(2, 9, 11), ignore_frac=0.2):
    rng = np.random.default_rng(seed)
    target = rng.integers(0, k, shape)
    target[rng.random(shape) < ignore_frac] = IGNORE
    pred = np.where(rng.random(shape) < 0.6, np.where(target == IGNORE, 0, target), rng.integers(0, k, shape))
    return pred, target


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), k=st.integers(1, 6), ignore_frac=st.sampled_from([0.0, 0.3, 1.0]))
def test_scores_match_slow_reference(seed, k, ignore_frac):
    pred, target = _random_maps(seed, k, ignore_frac=ignore_frac)
    cm = confusion_matrix(torch.from_numpy(pred), torch.from_numpy(target), k)
    got, ref = scores_from_confusion(cm), _slow_scores(pred, target, k)
    assert int(cm.sum()) == int((target != IGNORE).sum())
    for key in ("pixel_accuracy", "miou"):
        assert (math.isnan(got[key]) and math.isnan(ref[key])) or got[key] == pytest.approx(ref[key])
    for key in ("iou", "dice"):
        assert [None if v is None else round(v, 9) for v in got[key]] == \
               [None if v is None else round(v, 9) for v in ref[key]]


def test_all_correct_is_one_and_ignored_pixels_never_count():
    _, target = _random_maps(1, 4)
    pred = np.where(target == IGNORE, 0, target)
    s = scores_from_confusion(confusion_matrix(torch.from_numpy(pred), torch.from_numpy(target), 4))
    assert s["pixel_accuracy"] == 1.0 and s["miou"] == 1.0 and s["mdice"] == 1.0
    # whatever is predicted on ignored pixels changes nothing
    wild = np.where(target == IGNORE, 3, pred)
    s2 = scores_from_confusion(confusion_matrix(torch.from_numpy(wild), torch.from_numpy(target), 4))
    assert s2 == s


def test_absent_class_is_left_out_and_bad_ids_raise():
    target = torch.tensor([[0, 0, 1, 1]])
    pred = torch.tensor([[0, 1, 1, 1]])
    s = scores_from_confusion(confusion_matrix(pred, target, 3))
    assert s["iou"] == [0.5, pytest.approx(2 / 3), None]
    assert s["miou"] == pytest.approx((0.5 + 2 / 3) / 2)
    with pytest.raises(ValueError, match="class id 5"):
        confusion_matrix(pred, torch.tensor([[0, 5, 1, 1]]), 3)
    with pytest.raises(ValueError, match="shape"):
        confusion_matrix(pred, target[:, :2], 3)


def test_meter_sums_batches_like_one_big_batch():
    torch.manual_seed(0)
    logits = torch.randn(6, 4, 8, 8)
    target = torch.randint(0, 4, (6, 8, 8))
    target[:, :2] = IGNORE
    loss = SegmentationLoss()
    one, parts = SegmentationMeter(4, loss_fn=loss), SegmentationMeter(4, loss_fn=loss, class_names=list("abcd"))
    one.update(logits, target)
    for i in range(0, 6, 2):
        parts.update(logits[i : i + 2], target[i : i + 2])
    a, b = one.compute(), parts.compute()
    assert a["confusion_matrix"] == b["confusion_matrix"] and a["miou"] == b["miou"] and b["n"] == 6
    assert b["classes"] == list("abcd") and "loss" in b
    with pytest.raises(ValueError, match="4 classes"):
        parts.update(torch.randn(1, 3, 8, 8), target[:1])


def test_cross_entropy_reference_with_ignore_and_weights():
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 5, 4, dtype=torch.float64)
    target = torch.randint(0, 3, (2, 5, 4))
    target[0, 0] = IGNORE
    w = torch.tensor([0.5, 2.0, 1.0], dtype=torch.float64)
    num = den = 0.0
    logp = logits.log_softmax(1)
    for b in range(2):
        for y in range(5):
            for x in range(4):
                t = int(target[b, y, x])
                if t != IGNORE:
                    num -= float(w[t] * logp[b, t, y, x])
                    den += float(w[t])
    assert float(cross_entropy(logits, target, weight=w)) == pytest.approx(num / den)
    all_ignored = torch.full((2, 5, 4), IGNORE)
    assert float(cross_entropy(logits.requires_grad_(), all_ignored).detach()) == 0.0


def test_dice_loss_reference():
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 6, 5, dtype=torch.float64)
    target = torch.randint(0, 3, (2, 6, 5))
    target[1, :2] = IGNORE
    p = logits.softmax(1).numpy()
    t = target.numpy()
    dices = []
    for c in range(3):
        inter = ps = ts = 0.0
        for b, y, x in np.ndindex(2, 6, 5):
            if t[b, y, x] == IGNORE:
                continue
            inter += p[b, c, y, x] * (t[b, y, x] == c)
            ps += p[b, c, y, x]
            ts += t[b, y, x] == c
        dices.append((2 * inter + 1) / (ps + ts + 1))
    assert float(dice_loss(logits, target)) == pytest.approx(1 - np.mean(dices))
    # a perfect, confident prediction has (almost) no Dice loss
    perfect = F.one_hot(target.clamp(0, 2), 3).permute(0, 3, 1, 2).double() * 50
    assert float(dice_loss(perfect, target)) < 1e-6


def test_combined_loss_parts_and_gradient():
    logits = torch.randn(2, 4, 8, 8, requires_grad=True)
    target = torch.randint(0, 4, (2, 8, 8))
    total, parts = SegmentationLoss(ce_weight=1.0, dice_weight=0.5)(logits, target)
    assert set(parts) == {"ce", "dice"}
    assert float(total.detach()) == pytest.approx(parts["ce"] + 0.5 * parts["dice"], rel=1e-5)
    total.backward()
    assert torch.isfinite(logits.grad).all()
    with pytest.raises(ValueError):
        SegmentationLoss(ce_weight=0, dice_weight=0)

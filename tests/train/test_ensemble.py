"""Ensembles: the average against a manual average of the members' softmax, and the accuracy report."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import TensorDataset

from cnnkit.checkpoint import save_model_file
from cnnkit.errors import InputError
from cnnkit.models import create_model
from cnnkit.train.ensemble import ensemble_predict, evaluate_ensemble, format_report

KW = {"num_classes": 4, "in_chans": 1, "width": 4}


def _members(n=3):
    out = []
    for seed in range(n):
        torch.manual_seed(seed)
        out.append(create_model("resnet20_cifar", **KW).eval())
    return out


def _data(n=30):
    g = torch.Generator().manual_seed(7)
    return torch.randn(n, 1, 12, 12, generator=g), torch.randint(0, 4, (n,), generator=g)


def _manual_probs(models, x, flip=False):
    with torch.no_grad():
        total = torch.zeros(len(x), 4)
        for m in models:
            p = F.softmax(m(x), 1)
            if flip:
                p = (p + F.softmax(m(x.flip(-1)), 1)) / 2
            total += p
    return total / len(models)


@pytest.mark.parametrize("tta", [None, "flip"])
def test_ensemble_predict_is_the_mean_of_members_softmax(tta):
    models = _members()
    x, y = _data()
    want = _manual_probs(models, x, flip=tta == "flip")
    assert torch.allclose(ensemble_predict(models, x, tta=tta, batch_size=8), want, atol=1e-6)
    assert torch.allclose(ensemble_predict(models, TensorDataset(x, y), tta=tta, batch_size=11), want, atol=1e-6)


def _save(models, tmp_path, classes=None):
    paths = []
    for i, m in enumerate(models):
        meta = {"model": "resnet20_cifar", "model_kwargs": KW, "classes": classes or ["a", "b", "c", "d"],
                "input_size": [1, 12, 12]}
        paths.append(save_model_file(tmp_path / f"m{i}.safetensors", m, meta))
    return paths


def test_evaluate_ensemble_from_checkpoints(tmp_path):
    models = _members()
    paths = _save(models, tmp_path)
    x, y = _data()
    report = evaluate_ensemble(paths, TensorDataset(x, y), tta="flip", batch_size=8)
    acc = lambda p: float((p.argmax(1) == y).float().mean())  # noqa: E731
    for m, entry in zip(models, report["members"], strict=True):
        assert entry["accuracy"] == pytest.approx(acc(_manual_probs([m], x)))
        assert entry["accuracy_tta"] == pytest.approx(acc(_manual_probs([m], x, flip=True)))
    for k in range(1, 4):
        assert report["cumulative"][k - 1] == pytest.approx(acc(_manual_probs(models[:k], x, flip=True)))
        assert report["cumulative_plain"][k - 1] == pytest.approx(acc(_manual_probs(models[:k], x)))
    assert report["accuracy"] == pytest.approx(report["cumulative"][-1])
    assert report["accuracy_plain"] == report["cumulative_plain"][-1]
    assert report["n"] == 30 and report["classes"] == ["a", "b", "c", "d"]
    probs = _manual_probs(models, x, flip=True)
    assert report["loss"] == pytest.approx(float(F.nll_loss(probs.log(), y)), rel=1e-5)
    assert sum(map(sum, report["confusion_matrix"])) == 30 and str(paths[0]) == report["members"][0]["checkpoint"]
    text = format_report(report)
    assert "m2.safetensors" in text and "ensemble of 3" in text


def test_members_of_different_classes_are_refused(tmp_path):
    models = _members(2)
    a = _save(models[:1], tmp_path / "a")
    b = _save(models[1:], tmp_path / "b", classes=["w", "x", "y", "z"])
    x, y = _data()
    with pytest.raises(InputError, match="disagree on classes"):
        evaluate_ensemble(a + b, TensorDataset(x, y))
    other = create_model("resnet20_cifar", num_classes=3, in_chans=1, width=4).eval()
    with pytest.raises(InputError, match="predicts 3 classes"):
        ensemble_predict(models + [other], x)
    with pytest.raises(InputError, match="at least one"):
        ensemble_predict([], x)
    with pytest.raises(InputError, match="labelled"):
        evaluate_ensemble(models, x)

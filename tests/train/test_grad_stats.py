"""Gradient-norm and loss recorders against norms and losses computed by hand."""

from __future__ import annotations

import io

import pytest
import torch
import torch.nn as nn
from torch.utils.data import TensorDataset

from cnnkit.models import create_model
from cnnkit.train import Callback, TrainConfig, fit
from cnnkit.train.grad_stats import GradNormRecorder, LossRecorder, layer_grad_norms


def _model():
    torch.manual_seed(0)
    return create_model("resnet20_cifar", num_classes=3, in_chans=1, width=4)


def _manual_norms(model) -> dict[str, float]:
    """sqrt(sum g^2) in float64 over each conv weight's gradient."""
    out = {}
    for name, p in model.named_parameters():
        module = model.get_submodule(name.rsplit(".", 1)[0])
        if isinstance(module, nn.Conv2d) and name.endswith(".weight") and p.grad is not None:
            out[name.removesuffix(".weight")] = float((p.grad.double() ** 2).sum().sqrt())
    return out


def test_layer_grad_norms_after_backward():
    model = _model()
    x, y = torch.randn(6, 1, 12, 12), torch.randint(0, 3, (6,))
    nn.functional.cross_entropy(model(x), y).backward()
    got, want = layer_grad_norms(model), _manual_norms(model)
    assert list(got) == list(want) and len(got) == 19  # 19 convolutions in ResNet-20 (the 20th layer is fc)
    for k in want:
        assert got[k] == pytest.approx(want[k], rel=1e-5)
    fc = layer_grad_norms(model, (nn.Linear,))
    assert fc == {"fc": pytest.approx(float(model.fc.weight.grad.norm()))}


class _Reference(Callback):
    """Computes the norms by hand at the same moment, for comparison."""

    def __init__(self):
        self.rows = []

    def on_after_backward(self, trainer):
        self.rows.append((trainer.global_step, _manual_norms(trainer.model)))


def test_recorder_in_fit_matches_manual_norms_and_stops_after_max_steps():
    x, y = torch.randn(40, 1, 12, 12), torch.randint(0, 3, (40,))
    rec, ref, losses = GradNormRecorder(max_steps=4, every=2), _Reference(), LossRecorder()
    cfg = TrainConfig(epochs=2, batch_size=8, optimizer="sgd", lr=0.05)
    result = fit(_model(), TensorDataset(x, y), None, cfg, callbacks=[rec, ref, losses], progress=False)
    assert rec.steps == [0, 2]
    manual = dict(ref.rows)
    for step, row in zip(rec.steps, rec.norms, strict=True):
        want = manual[step]
        assert rec.layer_names == list(want)
        assert row == pytest.approx([want[n] for n in rec.layer_names], rel=1e-5)
    assert rec.as_array().shape == (2, 19)
    assert list(rec.mean_norms().values()) == pytest.approx(list(rec.as_array().mean(0)))
    # 5 equal batches per epoch: the epoch's mean loss is the mean of its steps' losses
    assert losses.steps == list(range(1, 11))
    for epoch, row in enumerate(result.history):
        assert row["train_loss"] == pytest.approx(sum(losses.losses[5 * epoch:5 * epoch + 5]) / 5, rel=1e-5)


def test_recorders_state_survives_a_weights_only_checkpoint():
    rec, losses = GradNormRecorder(), LossRecorder()
    rec.layer_names, rec.steps, rec.norms = ["a", "b"], [0, 1], [[1.0, 2.0], [3.0, float("nan")]]
    losses.steps, losses.losses = [1, 2], [0.5, 0.25]
    buf = io.BytesIO()
    torch.save({"g": rec.state_dict(), "l": losses.state_dict()}, buf)
    buf.seek(0)
    state = torch.load(buf, weights_only=True)
    rec2, losses2 = GradNormRecorder(), LossRecorder()
    rec2.load_state_dict(state["g"])
    losses2.load_state_dict(state["l"])
    assert rec2.layer_names == ["a", "b"] and rec2.steps == [0, 1] and rec2.norms[0] == [1.0, 2.0]
    assert losses2.losses == [0.5, 0.25]


def test_smoothed_losses_are_trailing_means():
    rec = LossRecorder()
    rec.losses = [4.0, 2.0, 0.0, 2.0]
    assert rec.smoothed(2).tolist() == [4.0, 3.0, 1.0, 1.0]

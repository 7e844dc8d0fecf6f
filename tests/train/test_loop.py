"""The training loop: determinism, clipping, schedules, early stopping, callbacks, NaN handling, files."""

import csv
import json
import math

import pytest
import torch
import torch.nn as nn
from torch.utils.data import DataLoader, TensorDataset

from cnnkit.errors import InputError
from cnnkit.train import Callback, NonFiniteLossError, TrainConfig, evaluate, fit
from cnnkit.train.callbacks import EarlyStopping
from cnnkit.train.checkpointing import load_state
from cnnkit.train.metrics import classification_metrics
from cnnkit.train.schedule import lr_factor


def _data(n=96, classes=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 1, 8, 8, generator=g)
    w = torch.randn(64, classes, generator=g)
    y = (x.flatten(1) @ w).argmax(1)
    return TensorDataset(x, y)


def _model(seed=0, classes=3):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Dropout(0.3),
                         nn.Linear(144, classes))


def _weights(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _cfg(**kw):
    base = {"epochs": 2, "batch_size": 16, "lr": 0.01, "seed": 3}
    return TrainConfig(**{**base, **kw})


def test_same_seed_same_weights_bit_for_bit():
    ds = _data()
    a = fit(_model(), ds, ds, _cfg(optimizer="sgd", weight_decay=1e-3), progress=False)
    b = fit(_model(), ds, ds, _cfg(optimizer="sgd", weight_decay=1e-3), progress=False)
    c = fit(_model(), ds, ds, _cfg(optimizer="sgd", weight_decay=1e-3, seed=4), progress=False)
    wa, wb, wc = _weights(a.model), _weights(b.model), _weights(c.model)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert a.history[-1]["train_loss"] == b.history[-1]["train_loss"]
    assert not all(torch.equal(wa[k], wc[k]) for k in wa)  # the seed matters (data order, dropout)


@pytest.mark.parametrize("optimizer", ["sgd", "adam", "adamw"])
def test_loss_falls(optimizer):
    ds = _data(192)
    result = fit(_model(), ds, ds, _cfg(epochs=4, optimizer=optimizer, lr=0.05 if optimizer == "sgd" else 0.01),
                 progress=False)
    hist = result.history
    assert hist[-1]["train_loss"] < 0.8 * hist[0]["train_loss"]
    assert len(hist) == 4 and all(set(r) >= {"epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr",
                                             "seconds"} for r in hist)
    assert result.best_val_acc == max(r["val_acc"] for r in hist)


def test_grad_clipping_bounds_the_norm():
    seen = []

    class Check(Callback):
        def on_batch_end(self, trainer, step, loss):  # after the step; the clipped gradients are still there
            norm = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in trainer.params]))
            seen.append((trainer.last_grad_norm, float(norm)))

    ds = _data()
    fit(_model(), ds, None, _cfg(epochs=1, grad_clip=0.05, optimizer="sgd"), callbacks=[Check()], progress=False)
    assert seen and all(after <= 0.05 * (1 + 1e-5) for _, after in seen)
    assert all(before > 0.05 for before, _ in seen)  # clipping really happened: the test would notice no-ops
    assert all(after == pytest.approx(0.05, rel=1e-4) for _, after in seen)


def _torch_lrs(scheduler_fn, steps, lr=0.1):
    p = nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=lr)
    sched = scheduler_fn(opt)
    out = []
    for _ in range(steps):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


@pytest.mark.parametrize("total,spe", [(60, 6), (37, 37), (100, 7)])
def test_schedules_match_torch_schedulers(total, spe):
    S = torch.optim.lr_scheduler
    ours = {s: [0.1 * lr_factor(t, schedule=s, total_steps=total, steps_per_epoch=spe, step_size=2, gamma=0.5)
                for t in range(total)] for s in ("none", "cosine", "step", "onecycle")}
    ref = {
        "none": [0.1] * total,
        "cosine": _torch_lrs(lambda o: S.CosineAnnealingLR(o, T_max=total), total),
        "step": _torch_lrs(lambda o: S.StepLR(o, step_size=2 * spe, gamma=0.5), total),
        "onecycle": _torch_lrs(lambda o: S.OneCycleLR(o, max_lr=0.1, total_steps=total, cycle_momentum=False),
                               total),
    }
    for name in ours:
        assert ours[name] == pytest.approx(ref[name], rel=1e-6, abs=1e-12), name


def test_warmup_matches_linear_lr_times_cosine():
    S = torch.optim.lr_scheduler
    total, warm = 50, 8
    linear = _torch_lrs(lambda o: S.LinearLR(o, start_factor=1 / warm, total_iters=warm - 1), total, lr=1.0)
    cosine = _torch_lrs(lambda o: S.CosineAnnealingLR(o, T_max=total), total, lr=1.0)
    ours = [lr_factor(t, schedule="cosine", total_steps=total, steps_per_epoch=5, warmup_steps=warm)
            for t in range(total)]
    assert ours == pytest.approx([a * b for a, b in zip(linear, cosine, strict=True)], rel=1e-6)


def test_loop_applies_the_schedule_to_every_group():
    lrs = []

    class Record(Callback):
        def on_batch_end(self, trainer, step, loss):
            lrs.append([g["lr"] for g in trainer.optimizer.param_groups])

    model, ds = _model(), _data(80)
    groups = [{"params": list(model[0].parameters()), "lr": 0.001}, {"params": list(model[5].parameters())}]
    cfg = _cfg(epochs=3, batch_size=16, schedule="onecycle", lr=0.1)
    fit(model, ds, None, cfg, callbacks=[Record()], param_groups=groups, progress=False)
    total = 3 * 5
    ref = _torch_lrs(lambda o: torch.optim.lr_scheduler.OneCycleLR(o, max_lr=0.1, total_steps=total,
                                                                   cycle_momentum=False), total)
    assert [g[1] for g in lrs] == pytest.approx(ref, rel=1e-6)
    assert [g[0] for g in lrs] == pytest.approx([r / 100 for r in ref], rel=1e-6)


def test_frozen_parameters_do_not_move():
    model, ds = _model(), _data()
    for p in model[0].parameters():
        p.requires_grad_(False)
    before = _weights(model)
    fit(model, ds, None, _cfg(epochs=1, weight_decay=0.1), progress=False)
    after = _weights(model)
    assert torch.equal(before["0.weight"], after["0.weight"]) and torch.equal(before["0.bias"], after["0.bias"])
    assert not torch.equal(before["5.weight"], after["5.weight"])


def test_nothing_trainable_is_refused():
    model = _model()
    model.requires_grad_(False)
    with pytest.raises(InputError, match="no trainable parameters"):
        fit(model, _data(), None, _cfg(), progress=False)


def test_early_stopping_stops():
    # a learning rate so small that validation accuracy cannot change (no batch norm, whose running statistics
    # would move it): the best epoch is the first
    ds = _data()
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 3))
    result = fit(model, ds, ds, _cfg(epochs=20, lr=1e-12, early_stopping_patience=2), progress=False)
    assert len(result.history) == 3
    assert result.final_metrics["stopped_early"]


def test_early_stopping_counts_epochs_without_improvement():
    class T:
        should_stop = False

    es, t = EarlyStopping(patience=2, monitor="val_loss", mode="min"), T()
    for epoch, loss in enumerate([1.0, 0.9, 0.95, 0.85, 0.9, 0.86], start=1):
        es.on_epoch_end(t, {"epoch": epoch, "val_loss": loss})
    assert t.should_stop and es.stopped_epoch == 6 and es.best == 0.85


def test_callbacks_fire_in_order():
    events = []

    class Record(Callback):
        def on_fit_start(self, trainer):
            events.append("fit_start")

        def on_epoch_start(self, trainer):
            events.append(f"epoch_start{trainer.epoch}")

        def on_after_backward(self, trainer):
            assert all(p.grad is not None for p in trainer.params)
            events.append("backward")

        def on_batch_end(self, trainer, step, loss):
            events.append(f"batch{step}")

        def on_epoch_end(self, trainer, metrics):
            assert metrics["val_acc"] is not None
            events.append(f"epoch_end{metrics['epoch']}")

        def on_fit_end(self, trainer):
            events.append("fit_end")

    ds = _data(32)
    fit(_model(), ds, ds, _cfg(epochs=2, batch_size=16), callbacks=[Record()], progress=False)
    assert events == ["fit_start", "epoch_start0", "backward", "batch1", "backward", "batch2", "epoch_end1",
                      "epoch_start1", "backward", "batch3", "backward", "batch4", "epoch_end2", "fit_end"]


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    class Poison(Callback):
        def on_batch_end(self, trainer, step, loss):
            if step == 5:
                with torch.no_grad():
                    trainer.model[5].weight[0, 0] = math.nan

    ds = _data()
    with pytest.raises(NonFiniteLossError, match="loss became nan") as info:
        fit(_model(), ds, ds, _cfg(epochs=3, checkpoint_every=2), out_dir=tmp_path, callbacks=[Poison()],
            progress=False)
    assert str(tmp_path) in str(info.value)
    state = load_state(tmp_path)
    assert state["global_step"] == 4
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())


def test_huge_learning_rate_stops_with_a_message():
    ds = _data()
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 3))
    with pytest.raises(NonFiniteLossError, match="lower the learning rate"):
        fit(model, ds, None, _cfg(epochs=5, optimizer="sgd", lr=1e12, schedule="none"), progress=False)


def test_bf16_and_channels_last_train():
    ds = _data()
    plain = fit(_model(), ds, ds, _cfg(), progress=False)
    cl = fit(_model(), ds, ds, _cfg(channels_last=True), progress=False)
    bf = fit(_model(), ds, ds, _cfg(bf16=True), progress=False)
    # channels-last changes only the memory layout: the same run up to float rounding
    assert cl.history[-1]["train_loss"] == pytest.approx(plain.history[-1]["train_loss"], rel=1e-4)
    # bf16 keeps 8 bits of mantissa: close, not equal
    assert bf.history[-1]["train_loss"] == pytest.approx(plain.history[-1]["train_loss"], rel=0.1)
    assert bf.history[-1]["train_loss"] != plain.history[-1]["train_loss"]


def test_evaluate_matches_the_metrics_of_all_logits():
    ds, model = _data(70), _model().eval()
    with torch.no_grad():
        logits = model(ds.tensors[0])
    loss = float(nn.functional.cross_entropy(logits, ds.tensors[1], reduction="sum"))
    ref = classification_metrics(logits, ds.tensors[1], loss_sum=loss)
    got = evaluate(model, ds, batch_size=16)
    assert got["confusion_matrix"] == ref["confusion_matrix"]
    assert got["loss"] == pytest.approx(ref["loss"], rel=1e-5)
    assert got["accuracy"] == ref["accuracy"] and got["n"] == 70


def test_evaluate_names_both_class_counts():
    ds = _data(20)
    ds.classes = ["a", "b", "c", "d"]
    with pytest.raises(InputError, match="predicts 3 classes but the data has 4"):
        evaluate(_model(), ds)


def test_dataloader_inputs_work():
    ds = _data()
    loader = DataLoader(ds, batch_size=16, shuffle=False)
    result = fit(_model(), loader, loader, _cfg(epochs=2), progress=False)
    assert len(result.history) == 2 and result.history[-1]["val_acc"] is not None


def test_run_folder_files(tmp_path):
    from cnnkit.checkpoint import load_model_file
    from cnnkit.models import create_model

    g = torch.Generator().manual_seed(0)
    ds = TensorDataset(torch.randn(40, 1, 32, 32, generator=g), torch.randint(0, 10, (40,), generator=g))
    model = create_model("lenet5")
    meta = {"model": "lenet5", "model_kwargs": {"num_classes": 10}, "classes": [str(i) for i in range(10)],
            "input_size": [1, 32, 32], "mean": [0.0], "std": [1.0]}
    result = fit(model, ds, ds, _cfg(epochs=3), out_dir=tmp_path, meta=meta, progress=False)
    with open(tmp_path / "log.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert float(rows[-1]["train_loss"]) == pytest.approx(result.history[-1]["train_loss"])
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["best_val_acc"] == result.best_val_acc and metrics["epochs"] == 3
    assert len(metrics["val"]["confusion_matrix"]) == 10
    assert (tmp_path / "curves.png").stat().st_size > 1000
    last, last_meta = load_model_file(tmp_path / "last.safetensors")
    assert last_meta["global_step"] == result.final_metrics["global_step"]
    assert all(torch.equal(a, b) for a, b in zip(last.state_dict().values(), model.state_dict().values(),
                                                  strict=True))
    best, best_meta = load_model_file(tmp_path / "best.safetensors")
    assert best_meta["val_acc"] == result.best_val_acc


def test_a_zoo_model_trained_from_python_reloads_from_its_model_file(tmp_path):
    """fit on a model from create_model records its registry name and arguments (not its weight file), so
    load_model_file rebuilds it; before, the class name ("smallfacenet") was recorded and could not be built."""
    from cnnkit.checkpoint import load_model_file
    from cnnkit.models import create_model

    torch.manual_seed(0)
    model = create_model("lenet5", num_classes=3, in_chans=1)
    assert model.cnnkit_name == "lenet5" and model.cnnkit_kwargs == {"num_classes": 3, "in_chans": 1}
    x, y = torch.randn(24, 1, 32, 32), torch.randint(0, 3, (24,))
    data = TensorDataset(x, y)
    fit(model, data, data, TrainConfig(epochs=1, batch_size=8), out_dir=tmp_path, progress=False)
    again, meta = load_model_file(tmp_path / "best.safetensors")
    assert meta["model"] == "lenet5"
    model.eval()
    again.eval()
    torch.testing.assert_close(again(x[:4]), model(x[:4]))


def test_create_model_records_only_json_arguments():
    from cnnkit.models import create_model

    model = create_model("resnet18", num_classes=3, weights=None, norm_layer=nn.BatchNorm2d)
    assert model.cnnkit_kwargs == {"num_classes": 3}  # no weight file, no class

"""The task registry, task_for_model, the Task defaults, meta["task"] in model files, and the import graph."""

from __future__ import annotations

import ast
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import TensorDataset

from cnnkit.errors import UnknownNameError
from cnnkit.tasks import (
    ClassificationTask,
    Meter,
    Task,
    get_task,
    list_tasks,
    move_to,
    register_task,
    task_for_model,
    task_name_of,
)

SRC = Path(__file__).resolve().parents[2] / "src" / "cnnkit"


class _Sums:
    """A minimal Meter: mean squared error of (N, 1) outputs against (N, 1) targets."""

    def __init__(self):
        self.total, self.n = 0.0, 0

    def update(self, outputs, targets):
        self.total += float(((outputs - targets) ** 2).sum())
        self.n += len(targets)

    def all_reduce(self):
        pass

    def compute(self):
        return {"mse": self.total / self.n, "loss": self.total / self.n, "n": self.n, "note": "text"}


@register_task
class _Regression(Task):
    name = "test_regression"
    best_metric = "mse"
    best_mode = "min"

    def loss(self, outputs, targets):
        return F.mse_loss(outputs, targets), {}

    def meter(self, model, data):
        return _Sums()


class _Regressor(nn.Module):
    task = "test_regression"

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 1)

    def forward(self, x):
        return self.fc(x)


def test_registry_finds_tasks_by_name_and_by_model():
    assert "classification" in list_tasks() and "test_regression" in list_tasks()
    assert isinstance(get_task("classification"), ClassificationTask)
    assert isinstance(task_for_model(nn.Linear(2, 2)), ClassificationTask)  # no `task` attribute: a classifier
    assert isinstance(task_for_model(_Regressor()), _Regression)
    assert task_name_of(_Regressor()) == "test_regression"
    assert get_task("test_regression") is not get_task("test_regression")  # a fresh instance each time
    assert isinstance(get_task("test_regression").meter(None, None), Meter)  # the Protocol fits a plain class


def test_unknown_task_names_its_neighbours():
    with pytest.raises(UnknownNameError, match="did you mean classification"):
        get_task("clasification")
    with pytest.raises(UnknownNameError, match="unknown task 'zzz'"):
        get_task("zzz")


def test_registration_is_checked():
    with pytest.raises(ValueError, match="registered twice"):
        @register_task
        class Again(Task):  # another class under a taken name
            name = "test_regression"
            best_metric = "x"

    with pytest.raises(ValueError, match="best_metric"):
        @register_task
        class NoMetric(Task):
            name = "test_no_metric"

    with pytest.raises(ValueError, match="best_mode"):
        @register_task
        class BadMode(Task):
            name = "test_bad_mode"
            best_metric = "x"
            best_mode = "largest"


def test_defaults_collate_move_and_compare():
    task = get_task("test_regression")
    x, y = task.collate([(torch.ones(3), torch.zeros(1)), (torch.zeros(3), torch.ones(1))])
    assert x.shape == (2, 3) and y.shape == (2, 1)
    nested = {"a": torch.ones(1), "b": [torch.zeros(2), ("keep", torch.ones(1))], "c": 3}
    moved = move_to(nested, torch.device("meta"))
    assert moved["a"].device.type == "meta" and moved["b"][1][1].device.type == "meta"
    assert moved["b"][1][0] == "keep" and moved["c"] == 3 and isinstance(moved["b"][1], tuple)
    assert task.is_better(0.1, None) and task.is_better(0.1, 0.2) and not task.is_better(0.3, 0.2)
    assert not task.is_better(math.nan, None) and not task.is_better(None, 0.2)
    assert get_task("classification").is_better(0.9, 0.8)
    row = task.history_metrics({"mse": 0.5, "loss": 0.5, "n": 4, "note": "text", "flag": True})
    assert row == {"val_loss": 0.5, "val_mse": 0.5}  # numbers only, n left out
    assert task.history_metrics(None) == {"val_loss": None, "val_mse": None}
    assert "mse" in task.report({"mse": 0.25, "n": 4}) and task.train_stats(x, y) == {}


def test_a_new_task_trains_through_fit_without_touching_the_loop(tmp_path):
    from cnnkit.checkpoint import read_model_meta
    from cnnkit.train import TrainConfig, fit

    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 3, generator=g)
    ds = TensorDataset(x, x @ torch.tensor([[1.0], [-2.0], [0.5]]) + 0.3)
    torch.manual_seed(0)
    result = fit(_Regressor(), ds, ds, TrainConfig(epochs=10, batch_size=16, lr=0.2, seed=0), out_dir=tmp_path,
                 progress=False)
    mses = [r["val_mse"] for r in result.history]
    assert mses[-1] < 0.2 * mses[0]
    assert result.best_value == min(mses) and result.best_metric == "mse"
    assert "train_acc" not in result.history[0] and "val_acc" not in result.history[0]
    assert read_model_meta(tmp_path / "best.safetensors")["task"] == "test_regression"


def test_model_files_record_the_task(tmp_path):
    from cnnkit.checkpoint import load_model_file, read_model_meta, save_model_file
    from cnnkit.models import create_model

    model = create_model("lenet5", num_classes=10)
    save_model_file(tmp_path / "a.safetensors", model, {"model": "lenet5", "model_kwargs": {"num_classes": 10},
                                                          "task": "classification"})
    assert read_model_meta(tmp_path / "a.safetensors")["task"] == "classification"
    # a file from before tasks: load_model_file takes the task from the rebuilt model
    save_model_file(tmp_path / "b.safetensors", model, {"model": "lenet5", "model_kwargs": {"num_classes": 10}})
    assert "task" not in read_model_meta(tmp_path / "b.safetensors")
    loaded, meta = load_model_file(tmp_path / "b.safetensors")
    assert meta["task"] == "classification" and isinstance(task_for_model(loaded), ClassificationTask)


def test_fit_writes_the_task_it_trained_into_every_model_file(tmp_path):
    from cnnkit.checkpoint import read_model_meta
    from cnnkit.train import TrainConfig, fit

    g = torch.Generator().manual_seed(0)
    ds = TensorDataset(torch.randn(32, 4, generator=g), torch.randint(0, 2, (32,), generator=g))
    fit(nn.Linear(4, 2), ds, ds, TrainConfig(epochs=1, batch_size=8), out_dir=tmp_path, progress=False,
        meta={"model": "x", "model_kwargs": {}, "task": "something else"})
    for name in ("last.safetensors", "best.safetensors"):
        assert read_model_meta(tmp_path / name)["task"] == "classification"


# -- import circles ------------------------------------------------------------------------------------------

def _imports(path: Path) -> set[str]:
    """Every cnnkit module `path` imports, at the top or inside functions (TYPE_CHECKING blocks included)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("cnnkit"):
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("cnnkit"))
    return found


@pytest.mark.parametrize(("importer", "forbidden"), [
    ("models", "cnnkit.checkpoint"),  # checkpoint builds models: models must not need it
    ("train/callbacks.py", "cnnkit.train.loop"),  # callbacks see the trainer through a Protocol
    ("tasks/base.py", "cnnkit.train"),  # the Task interface stands below the loop
    ("tasks/base.py", "cnnkit.checkpoint"),
])
def test_no_import_circle(importer, forbidden):
    target = SRC / importer
    files = sorted(target.rglob("*.py")) if target.is_dir() else [target]
    for f in files:
        bad = {m for m in _imports(f) if m == forbidden or m.startswith(forbidden + ".")}
        assert not bad, f"{f.relative_to(SRC)} imports {sorted(bad)}"


def test_each_module_imports_on_its_own():
    modules = ["cnnkit.checkpoint", "cnnkit.models", "cnnkit.tasks.base", "cnnkit.tasks", "cnnkit.train.callbacks",
               "cnnkit.train.loop", "cnnkit.train.checkpointing", "cnnkit.train.evaluation", "cnnkit.train",
               "cnnkit.cli.train", "cnnkit.cli.predict", "cnnkit.cli.evaluate", "cnnkit.cli.export"]
    code = ("import importlib, sys\n"
            "for m in sys.argv[1:]:\n"
            "    for k in [k for k in sys.modules if k == 'cnnkit' or k.startswith('cnnkit.')]:\n"
            "        del sys.modules[k]\n"
            "    importlib.import_module(m)\n")
    done = subprocess.run([sys.executable, "-c", code, *modules], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


def test_a_checkpoint_from_before_tasks_resumes_exactly(tmp_path):
    # cnnkit before tasks saved the epoch sums as [loss, correct, n] and "best_val_acc", and no "task"
    from cnnkit.train import Callback, TrainConfig, fit
    from cnnkit.train.checkpointing import STATE_FILE, load_state

    class Stop(Exception):
        pass

    class StopAt(Callback):
        def on_batch_end(self, trainer, step, loss):
            if step == 5:
                raise Stop

    g = torch.Generator().manual_seed(0)
    ds = TensorDataset(torch.randn(60, 4, generator=g), torch.randint(0, 3, (60,), generator=g))
    cfg = TrainConfig(epochs=2, batch_size=8, seed=1, checkpoint_every=2)

    def model():
        torch.manual_seed(0)
        return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Dropout(0.2), nn.Linear(8, 3))

    ref = fit(model(), ds, ds, cfg, progress=False)
    with pytest.raises(Stop):
        fit(model(), ds, ds, cfg, out_dir=tmp_path, callbacks=[StopAt()], progress=False)
    state = load_state(tmp_path)
    sums = state.pop("epoch_sums")
    assert set(sums) == {"loss", "n", "stat:acc"} and sums["n"] == 32  # mid-epoch: 4 batches of 8
    state["epoch_sums"] = [sums["loss"], int(sums["stat:acc"]), int(sums["n"])]
    state["best_val_acc"] = state.pop("best_value")
    del state["task"]
    torch.save(state, tmp_path / STATE_FILE)
    resumed = fit(model(), ds, ds, cfg, out_dir=tmp_path, resume=True, progress=False)
    wa, wb = ref.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert [r["train_acc"] for r in resumed.history] == [r["train_acc"] for r in ref.history]
    assert resumed.best_val_acc == ref.best_val_acc


def test_resuming_a_run_of_another_task_is_refused(tmp_path):
    from cnnkit.errors import InputError
    from cnnkit.train import TrainConfig, fit

    class SameWeightsNoTask(nn.Module):  # the regressor's parameters, but a classifier by default
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(3, 1)

    g = torch.Generator().manual_seed(0)
    ds = TensorDataset(torch.randn(16, 3, generator=g), torch.randn(16, 1, generator=g))
    fit(_Regressor(), ds, None, TrainConfig(epochs=1, batch_size=8), out_dir=tmp_path, progress=False)
    with pytest.raises(InputError, match="trained a test_regression task, not classification"):
        fit(SameWeightsNoTask(), ds, None, TrainConfig(epochs=2, batch_size=8), out_dir=tmp_path, resume=True,
            progress=False)


def test_a_meter_without_the_best_metric_is_named():
    from cnnkit.train import TrainConfig, fit

    class Wrong(_Regression):
        best_metric = "rmse"  # the meter reports "mse"

    ds = TensorDataset(torch.randn(16, 3), torch.randn(16, 1))
    with pytest.raises(ValueError, match="has no 'rmse'.*'mse'"):
        fit(_Regressor(), ds, ds, TrainConfig(epochs=1, batch_size=8), progress=False, task=Wrong())

"""ClassificationTask: the same loss, statistics and metrics as the classification code it wraps."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import TensorDataset

from cnnkit.tasks import ClassificationTask, get_task
from cnnkit.train import TrainConfig, evaluate


def _batch(n=40, c=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, c, generator=g), torch.randint(0, c, (n,), generator=g)


def test_loss_and_train_stats_are_cross_entropy_and_correct_counts():
    logits, y = _batch()
    task = get_task("classification")
    task.configure(TrainConfig(label_smoothing=0.1))
    loss, parts = task.loss(logits, y)
    assert parts == {}
    assert torch.equal(loss, nn.CrossEntropyLoss(label_smoothing=0.1)(logits, y))
    correct = sum(int(logits[i].argmax()) == int(y[i]) for i in range(len(y)))  # one by one
    assert task.train_stats(logits, y) == {"acc": float(correct)}
    fixed = ClassificationTask(label_smoothing=0.0)
    fixed.configure(TrainConfig(label_smoothing=0.3))  # an explicit value wins over the config's
    assert torch.equal(fixed.loss(logits, y)[0], F.cross_entropy(logits, y))


def test_meter_equals_evaluate_and_the_history_keeps_two_columns():
    from cnnkit.tasks.evaluation import evaluate_task

    x, y = _batch(n=70, c=4, seed=1)
    ds = TensorDataset(x, y)
    model = nn.Linear(4, 4)
    task = get_task("classification")
    got = evaluate_task(model, ds, task, batch_size=16)
    want = evaluate(model, ds, batch_size=16)
    assert got == want
    assert task.history_metrics(got) == {"val_loss": want["loss"], "val_acc": want["accuracy"]}
    assert task.history_metrics(None) == {"val_loss": None, "val_acc": None}
    assert task.evaluate(model, ds, batch_size=16) == want
    report = task.report({**want, "classes": ["a", "b", "c", "d"]})
    assert "accuracy" in report and "columns: predicted" in report and "\n  a " in report


def test_an_empty_shard_still_has_counters_of_the_right_size():
    model = nn.Linear(3, 6)
    empty = TensorDataset(torch.zeros(0, 3), torch.zeros(0).long())
    empty.classes = list("abcdef")  # the class count comes from the data when no batch gave it
    meter = get_task("classification").meter(model, empty)
    meter.all_reduce()
    assert len(meter.compute()["confusion_matrix"]) == 6


def test_predict_of_an_array_equals_predict_of_its_file(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 3)).eval()
    meta = {"input_size": [3, 8, 8], "mean": [0.5, 0.4, 0.3], "std": [0.2, 0.2, 0.2], "classes": ["x", "y", "z"]}
    img = np.random.default_rng(0).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    Image.fromarray(img).save(tmp_path / "a.png")
    task = get_task("classification")
    one = task.predict(model, img, meta, topk=2)
    files = task.predict_files(model, [str(tmp_path / "a.png")], meta, topk=2)
    assert files == [one] and len(one["predictions"]) == 2
    # by hand: normalise, forward, softmax
    x = (torch.from_numpy(img).permute(2, 0, 1).float() / 255 - torch.tensor(meta["mean"]).view(3, 1, 1)) \
        / torch.tensor(meta["std"]).view(3, 1, 1)
    with torch.no_grad():
        probs = torch.softmax(model(x[None]), dim=1)[0]
    assert one["predictions"][0]["class"] == meta["classes"][int(probs.argmax())]
    assert one["predictions"][0]["probability"] == pytest.approx(float(probs.max()), abs=1e-6)
    picture = task.render(img, one, meta)
    assert picture.dtype == np.uint8 and picture.ndim == 3 and picture.shape[2] == 3
    assert task.describe(one).startswith(one["predictions"][0]["class"] + " ")


def test_load_data_gives_the_three_splits_as_the_cli_had_them():
    from cnnkit.train.runs import load_split

    task = get_task("classification")
    splits = task.load_data("digits", image_size=16, in_chans=1, split_seed=3, augment="flip", seed=1)
    assert set(splits) == {"train", "val", "test"}
    ref = load_split("digits", "val", image_size=16, in_chans=1, split_seed=3)
    assert len(splits["val"]) == len(ref) and splits["val"].targets == ref.targets
    assert splits["val"].mean == splits["train"].mean and splits["train"].transform is not None
    assert splits["val"].transform is None

"""Resuming: a run stopped at any step and resumed ends with exactly the weights of an uninterrupted run."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.nn as nn
from torch.utils.data import TensorDataset

from cnnkit.checkpoint import load_model_file, read_model_meta, save_model_file
from cnnkit.errors import FileFormatError, InputError
from cnnkit.train import Callback, TrainConfig, fit
from cnnkit.train.checkpointing import LAST_FILE, STATE_FILE, load_state, sync_last_file


class Crash(Exception):
    pass


class CrashAt(Callback):
    """Stands in for a kill: the process stops dead at `step` (nothing after it runs)."""

    def __init__(self, step):
        self.step = step

    def on_batch_end(self, trainer, step, loss):
        if step == self.step:
            raise Crash


class CountBatches(Callback):
    """A callback with state, to check callback states travel in checkpoints."""

    def __init__(self):
        self.n = 0

    def on_batch_end(self, trainer, step, loss):
        self.n += 1

    def state_dict(self):
        return {"n": self.n}

    def load_state_dict(self, state):
        self.n = state["n"]


def _data(n=100, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 1, 8, 8, generator=g)
    y = (x.flatten(1) @ torch.randn(64, 4, generator=g)).argmax(1)
    return TensorDataset(x, y)


def _model(seed=0):
    torch.manual_seed(seed)
    # dropout draws from the global RNG every step, batch norm keeps running statistics: both must be restored
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Dropout(0.5),
                         nn.Linear(144, 4))


def _cfg(**kw):
    return TrainConfig(**{"epochs": 3, "batch_size": 16, "lr": 0.02, "optimizer": "sgd", "schedule": "cosine",
                          "seed": 5, "checkpoint_every": 3, **kw})


def _same(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize("crash_step", [4, 7, 14])  # mid-epoch after a checkpoint, mid-epoch, at an epoch's end
def test_resume_after_crash_reaches_the_same_weights(tmp_path, crash_step):
    ds = _data()  # 100 samples / 16: 7 steps per epoch (the last batch has 4), 21 in all
    ref = fit(_model(), ds, ds, _cfg(), callbacks=[CountBatches()], progress=False)

    run = tmp_path / "run"
    with pytest.raises(Crash):
        fit(_model(), ds, ds, _cfg(), out_dir=run, callbacks=[CountBatches(), CrashAt(crash_step)], progress=False)
    saved = load_state(run)
    assert saved["global_step"] == crash_step // 3 * 3 or saved["batch"] == 0
    # a differently initialised model: everything must come from the checkpoint
    counter = CountBatches()
    resumed = fit(_model(seed=99), ds, ds, _cfg(), out_dir=run, callbacks=[counter], resume=True, progress=False)
    assert _same(resumed.model, ref.model)
    assert counter.n == 21  # its count went on from the checkpoint
    assert [r["train_loss"] for r in resumed.history] == [r["train_loss"] for r in ref.history]
    assert [r["val_acc"] for r in resumed.history] == [r["val_acc"] for r in ref.history]
    model, meta = _load_plain(run / LAST_FILE)
    assert meta["global_step"] == 21


def test_augmented_data_resumes_exactly_and_ignores_the_worker_count(tmp_path):
    # augmentation draws from its own generator, reseeded per sample from (seed, epoch, index): a resumed run
    # and a run with loader processes see the very same augmented images
    from torch.utils.data import Subset

    from cnnkit.augment import build_transform
    from cnnkit.data import load_dataset

    ds = load_dataset("digits", split="train", image_size=16, in_chans=1)
    ds.transform = build_transform("crop=2,rotate=15", image_size=16, seed=0)
    ds = Subset(ds, range(80))

    def model():
        torch.manual_seed(0)
        return nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(784, 10))

    cfg = {"epochs": 2, "batch_size": 16, "checkpoint_every": 2}
    ref = fit(model(), ds, None, _cfg(**cfg), progress=False)
    with pytest.raises(Crash):
        fit(model(), ds, None, _cfg(**cfg), out_dir=tmp_path, callbacks=[CrashAt(7)], progress=False)
    resumed = fit(model(), ds, None, _cfg(**cfg), out_dir=tmp_path, resume=True, progress=False)
    workers = fit(model(), ds, None, _cfg(**cfg, num_workers=2), progress=False)
    assert _same(resumed.model, ref.model)
    assert _same(workers.model, ref.model)
    plain = Subset(load_dataset("digits", split="train", image_size=16, in_chans=1), range(80))
    unaugmented = fit(model(), plain, None, _cfg(**cfg), progress=False)
    assert not _same(unaugmented.model, ref.model)  # the augmentation did change the images


def _load_plain(path):
    # the test model is not in the registry: read the weights file directly
    from safetensors.torch import load_file

    return load_file(str(path)), read_model_meta(path)


def test_resume_of_a_finished_run_changes_nothing(tmp_path):
    ds = _data(48)
    first = fit(_model(), ds, ds, _cfg(epochs=2), out_dir=tmp_path, progress=False)
    again = fit(_model(seed=7), ds, ds, _cfg(epochs=2), out_dir=tmp_path, resume=True, progress=False)
    assert _same(first.model, again.model) and len(again.history) == 2


def test_resume_with_more_epochs_continues(tmp_path):
    ds = _data(48)
    fit(_model(), ds, ds, _cfg(epochs=1, schedule="none"), out_dir=tmp_path, progress=False)
    more = fit(_model(), ds, ds, _cfg(epochs=3, schedule="none"), out_dir=tmp_path, resume=True, progress=False)
    ref = fit(_model(), ds, ds, _cfg(epochs=3, schedule="none"), progress=False)
    assert [r["epoch"] for r in more.history] == [1, 2, 3]
    assert _same(more.model, ref.model)  # a constant lr does not depend on the number of epochs


def test_resume_with_other_data_is_refused(tmp_path):
    with pytest.raises(Crash):
        fit(_model(), _data(48), None, _cfg(epochs=2), out_dir=tmp_path, callbacks=[CrashAt(4)], progress=False)
    with pytest.raises(InputError, match="training data differs"):
        fit(_model(), _data(60), None, _cfg(epochs=2), out_dir=tmp_path, resume=True, progress=False)


def test_damaged_state_is_a_clear_error(tmp_path):
    (tmp_path / STATE_FILE).write_bytes(b"not a checkpoint")
    with pytest.raises(FileFormatError, match="cannot read training state"):
        fit(_model(), _data(), None, _cfg(), out_dir=tmp_path, resume=True, progress=False)


def test_lagging_weights_file_is_repaired_on_resume(tmp_path):
    # a kill between the two writes leaves last.safetensors one checkpoint behind last.state.pt
    ds = _data(64)
    with pytest.raises(Crash):
        fit(_model(), ds, None, _cfg(), out_dir=tmp_path, callbacks=[CrashAt(7)], progress=False)
    state = load_state(tmp_path)
    stale = _model(seed=3)
    save_model_file(tmp_path / LAST_FILE, stale, {"model": "x", "model_kwargs": {}, "global_step": 3})
    model = _model(seed=4)
    model.load_state_dict(state["model"])
    assert sync_last_file(tmp_path, state, model)
    assert not sync_last_file(tmp_path, state, model)  # in step now: left alone
    weights, meta = _load_plain(tmp_path / LAST_FILE)
    assert meta["global_step"] == state["global_step"] == 6
    assert all(torch.equal(weights[k], v) for k, v in state["model"].items())


# -- the real thing: `cnnkit train` killed with SIGKILL mid-epoch, then `--resume` --------------------------

def _digits_folder(root: Path, per_class: int = 24) -> Path:
    """A small image folder of sklearn digits (class sub-folders), so the CLI reads real files."""
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits

    d = load_digits()
    for c in range(10):
        (root / str(c)).mkdir(parents=True, exist_ok=True)
        for k, i in enumerate(np.flatnonzero(d.target == c)[:per_class]):
            img = (d.images[i] * (255 / 16)).astype(np.uint8)
            Image.fromarray(img).resize((32, 32), Image.BILINEAR).save(root / str(c) / f"{k}.png")
    return root


def _train_cmd(data: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "cnnkit", "train", "--model", "lenet5", "--data", str(data), "--epochs", "3",
            "--batch-size", "8", "--checkpoint-every", "5", "--workers", "0", "--seed", "11", "--out", str(out),
            "--no-progress", *extra]


def test_cli_resume_after_sigkill_matches_uninterrupted_run(tmp_path):
    data = _digits_folder(tmp_path / "digits")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    ref_dir, run_dir = tmp_path / "ref", tmp_path / "run"
    done = subprocess.run(_train_cmd(data, ref_dir), env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr

    proc = subprocess.Popen(_train_cmd(data, run_dir), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while not (run_dir / STATE_FILE).exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    killed_at = load_state(run_dir)
    total = load_state(ref_dir)["global_step"]
    assert 0 < killed_at["global_step"] < total, "the kill came too late to test a resume"

    resumed = subprocess.run(_train_cmd(data, run_dir, "--resume"), env=env, capture_output=True, text=True,
                             timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    ref_model, _ = load_model_file(ref_dir / LAST_FILE)
    run_model, meta = load_model_file(run_dir / LAST_FILE)
    assert meta["global_step"] == total
    assert _same(run_model, ref_model)

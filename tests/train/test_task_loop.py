"""The loop serves any task: a toy box-regression task, defined here and nowhere else, trains through `fit`
with its own collation, loss, meter and best metric; resumes bit-identically after a crash and after kill -9;
trains under DDP (two processes, and torchrun); writes log.csv, metrics.json, curves and best.safetensors.

Run as a script this file is the training program the subprocess tests start:
    python tests/train/test_task_loop.py train OUT_DIR [--resume]
    torchrun --nproc_per_node 2 tests/train/test_task_loop.py ddp OUT_DIR
"""

from __future__ import annotations

import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from toy_box import SIZE, BoxNet, MeanIoUMeter, Squares, ToyBoxTask, _iou_by_hand, box_iou_pairs  # noqa: E402,F401

from cnnkit.tasks import get_task, register_task, task_for_model
from cnnkit.train import Callback, TrainConfig, fit
from cnnkit.train import distributed as dist


def _model(seed: int = 0) -> BoxNet:
    torch.manual_seed(seed)
    return BoxNet()


def _cfg(**kw) -> TrainConfig:
    return TrainConfig(**{"epochs": 4, "batch_size": 16, "lr": 3e-3, "seed": 2, "checkpoint_every": 2, **kw})


def _same(a, b) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


class Crash(Exception):
    pass


class CrashAt(Callback):
    def __init__(self, step):
        self.step = step

    def on_batch_end(self, trainer, step, loss):
        if step == self.step:
            raise Crash


# -- tests ----------------------------------------------------------------------------------------------------

def test_meter_iou_matches_a_python_loop():
    g = torch.Generator().manual_seed(1)
    xy = torch.rand(200, 2, generator=g) * 10
    a = torch.cat([xy, xy + torch.rand(200, 2, generator=g) * 6], 1)
    b = a + torch.randn(200, 4, generator=g)  # overlapping mostly, some not at all, some inverted (area 0)
    a[:5] = b[:5]  # identical boxes: IoU 1
    a[5] = torch.tensor([0.0, 0.0, 1.0, 1.0])
    b[5] = torch.tensor([1.0, 0.0, 2.0, 1.0])  # touching only: IoU 0
    meter = MeanIoUMeter()
    for i in range(0, 200, 32):  # batch by batch
        meter.update(a[i:i + 32], [{"boxes": box[None]} for box in b[i:i + 32]])
    want = sum(_iou_by_hand(p.tolist(), t.tolist()) for p, t in zip(a, b, strict=True)) / 200
    assert 0.2 < want < 0.9  # a spread of overlaps
    assert meter.compute()["miou"] == pytest.approx(want, abs=1e-6)
    assert meter.compute()["n"] == 200
    assert _iou_by_hand([0, 0, 1, 1], [1, 0, 2, 1]) == 0.0


def test_the_task_follows_from_the_model():
    assert isinstance(task_for_model(BoxNet()), ToyBoxTask)
    assert get_task("toy_box").best_metric == "miou"


def test_a_box_task_trains_through_fit_and_writes_its_run_folder(tmp_path):
    train, val = Squares(96, seed=0), Squares(40, seed=1)
    result = fit(_model(), train, val, _cfg(epochs=6), out_dir=tmp_path, progress=False)
    hist = result.history
    assert list(hist[0]) == ["epoch", "train_loss", "train_iou", "train_l1", "val_loss", "val_miou", "lr",
                             "seconds"]
    assert hist[-1]["train_loss"] < 0.5 * hist[0]["train_loss"]
    assert hist[-1]["val_miou"] > hist[0]["val_miou"] + 0.1
    # the meter's numbers are those of the final model measured by hand
    model = result.model.eval()
    with torch.no_grad():
        pred = model(torch.stack([x for x, _ in val.items]))
    ious = [_iou_by_hand(p.tolist(), t["boxes"][0].tolist()) for p, (_, t) in zip(pred, val.items, strict=True)]
    assert hist[-1]["val_miou"] == pytest.approx(sum(ious) / len(ious), abs=1e-5)
    # best.safetensors follows the best val mIoU; the files speak of the task's metric
    best_epoch = max(hist, key=lambda r: r["val_miou"])
    assert result.best_metric == "miou" and result.best_value == best_epoch["val_miou"]
    assert result.best_val_acc is None
    from cnnkit.checkpoint import read_model_meta

    best_meta = read_model_meta(tmp_path / "best.safetensors")
    assert best_meta["task"] == "toy_box" and best_meta["epoch"] == best_epoch["epoch"]
    assert best_meta["val_miou"] == best_epoch["val_miou"]
    assert read_model_meta(tmp_path / "last.safetensors")["task"] == "toy_box"
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["best_val_miou"] == result.best_value and metrics["best_metric"] == "miou"
    assert metrics["val"]["n"] == 40 and metrics["train_iou"] == hist[-1]["train_iou"]
    rows = list(csv.DictReader((tmp_path / "log.csv").open()))
    assert list(rows[0]) == list(hist[0]) and len(rows) == 6
    assert float(rows[-1]["val_miou"]) == pytest.approx(hist[-1]["val_miou"])
    assert (tmp_path / "curves.png").stat().st_size > 1000


def test_a_crashed_box_run_resumes_to_the_same_weights(tmp_path):
    train, val = Squares(70, seed=0), Squares(20, seed=1)  # 70 / 16: 5 steps per epoch (last batch 6)
    ref = fit(_model(), train, val, _cfg(), progress=False)
    with pytest.raises(Crash):
        fit(_model(), train, val, _cfg(), out_dir=tmp_path, callbacks=[CrashAt(7)], progress=False)
    resumed = fit(_model(seed=5), train, val, _cfg(), out_dir=tmp_path, resume=True, progress=False)
    assert _same(resumed.model, ref.model)
    assert resumed.history == [{**r, "seconds": s["seconds"]} for r, s in zip(ref.history, resumed.history,
                                                                                strict=True)]


def test_early_stopping_and_best_follow_a_min_metric(tmp_path):
    # a second task, registered here, whose best metric is an error (smaller is better): no loop edit needed
    @register_task
    class ToyBoxError(ToyBoxTask):
        name = "toy_box_error"
        best_metric = "error"
        best_mode = "min"

        def meter(self, model, data):
            inner = MeanIoUMeter()

            class ErrorMeter:
                update, all_reduce = inner.update, inner.all_reduce

                def compute(self):
                    m = inner.compute()
                    return {"error": 1.0 - m["miou"], "loss": m["loss"], "n": m["n"]}

            return ErrorMeter()

    train, val = Squares(64, seed=0), Squares(24, seed=1)
    result = fit(_model(), train, val, _cfg(epochs=5, early_stopping_patience=1, lr=0.05), out_dir=tmp_path,
                 progress=False, task=get_task("toy_box_error"))
    errors = [r["val_error"] for r in result.history]
    assert result.best_value == min(errors) and result.best_metric == "error"
    from cnnkit.checkpoint import read_model_meta

    assert read_model_meta(tmp_path / "best.safetensors")["val_error"] == min(errors)
    assert read_model_meta(tmp_path / "best.safetensors")["task"] == "toy_box_error"
    # early stopping watched val_error, smaller being better: it stopped right after the first worse epoch
    worse = [i for i in range(1, len(errors)) if errors[i] >= min(errors[:i])]
    assert len(result.history) == (worse[0] + 1 if worse else 5)


def test_a_nan_loss_stops_a_box_run(tmp_path):
    from cnnkit.train import NonFiniteLossError

    with pytest.raises(NonFiniteLossError, match="became (nan|inf)"):
        fit(_model(), Squares(48), None, _cfg(lr=1e30, optimizer="sgd", checkpoint_every=None), out_dir=tmp_path,
            progress=False)


def test_progress_shows_the_tasks_main_statistic(capsys, monkeypatch):
    import tqdm.auto

    shown = []
    real = tqdm.auto.tqdm.set_postfix
    monkeypatch.setattr(tqdm.auto.tqdm, "set_postfix",
                        lambda self, ordered_dict=None, refresh=True, **kw: shown.append(dict(ordered_dict or kw))
                        or real(self, ordered_dict, refresh, **kw))
    fit(_model(), Squares(40), Squares(8), _cfg(epochs=1, checkpoint_every=None), progress=True)
    assert shown and all(set(p) == {"loss", "iou"} for p in shown)  # the bar: loss and the task's main statistic
    out = capsys.readouterr().out
    assert "train loss " in out and " iou " in out and "| val loss " in out and " miou " in out  # the epoch line


# -- kill -9 and resume, in real processes ---------------------------------------------------------------------

class SlowSteps(Callback):
    """Leaves time for the kill between checkpoints (changes nothing else)."""

    def on_batch_end(self, trainer, step, loss):
        time.sleep(0.03)


def _script_train(out_dir: str, resume: bool) -> None:
    torch.set_num_threads(1)
    fit(_model(), Squares(96, seed=0), Squares(20, seed=1), _cfg(epochs=5), out_dir=out_dir, resume=resume,
        callbacks=[SlowSteps()], progress=False)


def test_kill_9_then_resume_is_bit_identical(tmp_path):
    from cnnkit.train.checkpointing import LAST_FILE, STATE_FILE, load_state

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    me = str(Path(__file__).resolve())
    ref, run = tmp_path / "ref", tmp_path / "run"
    done = subprocess.run([sys.executable, me, "train", str(ref)], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    total = load_state(ref)["global_step"]
    assert total == 5 * 6

    proc = subprocess.Popen([sys.executable, me, "train", str(run)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while not (run / STATE_FILE).exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    time.sleep(0.2)  # a few steps past the first checkpoint
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    killed_at = load_state(run)["global_step"]
    assert 0 < killed_at < total, "the kill came too late to test a resume"

    resumed = subprocess.run([sys.executable, me, "train", str(run), "--resume"], env=env, capture_output=True,
                             text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    from safetensors.torch import load_file

    a, b = load_file(str(ref / LAST_FILE)), load_file(str(run / LAST_FILE))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    ra, rb = (json.loads((d / "metrics.json").read_text()) for d in (ref, run))
    assert ra["val"] == rb["val"] and ra["best_val_miou"] == rb["best_val_miou"] and rb["global_step"] == total


# -- data-parallel ---------------------------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_train(out_dir: str, result_path: str) -> None:
    torch.set_num_threads(1)
    model = _model()
    train, val, cfg = Squares(100, seed=0), Squares(30, seed=1), _cfg(epochs=3, checkpoint_every=3)
    result = fit(model, train, val, cfg, out_dir=out_dir, progress=False)
    # the same run stopped at step 5 on both ranks (mid-epoch, after the checkpoint of step 3), then resumed:
    # rank 0 carries the saved epoch sums, the others start from zero with the same keys
    try:
        fit(_model(), train, val, cfg, out_dir=out_dir + "-crashed", callbacks=[CrashAt(5)], progress=False)
    except Crash:
        pass
    resumed = fit(_model(seed=9), train, val, cfg, out_dir=out_dir + "-crashed", resume=True, progress=False)
    torch.save({"weights": model.state_dict(), "history": result.history, "world": dist.world_size(),
                "resumed_weights": resumed.model.state_dict(), "resumed_history": resumed.history}, result_path)
    dist.cleanup()


def _worker(rank: int, world: int, port: int, out_dir: str, result_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    _ddp_train(out_dir, str(Path(result_dir) / f"rank{rank}.pt"))


def _check_ddp(out: Path, results: Path) -> None:
    r0 = torch.load(results / "rank0.pt", weights_only=True)
    r1 = torch.load(results / "rank1.pt", weights_only=True)
    assert r0["world"] == r1["world"] == 2
    assert all(torch.equal(r0["weights"][k], r1["weights"][k]) for k in r0["weights"])
    assert [{**h, "seconds": 0} for h in r0["history"]] == [{**h, "seconds": 0} for h in r1["history"]]
    assert r0["history"][-1]["train_loss"] < r0["history"][0]["train_loss"]
    for r in (r0, r1):  # the crashed and resumed run ends where the uninterrupted one did, on every rank
        assert all(torch.equal(r0["weights"][k], r["resumed_weights"][k]) for k in r0["weights"])
        assert [{**h, "seconds": 0} for h in r["resumed_history"]] == [{**h, "seconds": 0} for h in r0["history"]]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["val"]["n"] == 30  # the sharded validation counted every sample once
    assert metrics["global_step"] == 3 * 4  # 50 samples per rank / 16: 4 steps per epoch


@pytest.mark.timeout(180)
def test_two_processes_train_the_box_task_alike(tmp_path):
    import torch.multiprocessing as mp

    out, results = tmp_path / "run", tmp_path / "results"
    results.mkdir()
    mp.spawn(_worker, args=(2, _free_port(), str(out), str(results)), nprocs=2, join=True)
    _check_ddp(out, results)


@pytest.mark.slow
def test_torchrun_trains_the_box_task(tmp_path):
    torchrun = Path(sys.executable).parent / "torchrun"
    out, results = tmp_path / "run", tmp_path / "results"
    results.mkdir()
    cmd = [str(torchrun), "--nproc_per_node", "2", "--master_port", str(_free_port()), str(Path(__file__).resolve()),
           "ddp", str(out), str(results)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-2000:]
    _check_ddp(out, results)


if __name__ == "__main__":
    if sys.argv[1] == "train":
        _script_train(sys.argv[2], resume="--resume" in sys.argv[3:])
    elif sys.argv[1] == "ddp":
        _ddp_train(sys.argv[2], str(Path(sys.argv[3]) / f"rank{os.environ['RANK']}.pt"))

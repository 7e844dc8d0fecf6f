"""Data-parallel training: two processes (gloo on CPU) end with identical weights, and the loss falls."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
import torch.nn as nn
from torch.utils.data import TensorDataset


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _data():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 1, 8, 8, generator=g)
    y = (x.flatten(1) @ torch.randn(64, 4, generator=g)).argmax(1)
    return TensorDataset(x, y)


def _worker(rank: int, world: int, port: int, out_dir: str, result_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    from cnnkit.train import TrainConfig, distributed, fit

    ds = _data()
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Flatten(), nn.Dropout(0.2),
                          nn.Linear(288, 4))
    cfg = TrainConfig(epochs=4, batch_size=16, lr=0.01, seed=1, checkpoint_every=3)
    result = fit(model, ds, ds, cfg, out_dir=out_dir, progress=False)
    torch.save({"weights": model.state_dict(), "history": result.history, "world": distributed.world_size()},
               Path(result_dir) / f"rank{rank}.pt")
    distributed.cleanup()


@pytest.mark.timeout(180)
def test_two_processes_end_with_identical_weights(tmp_path):
    out, results = tmp_path / "run", tmp_path / "results"
    results.mkdir()
    mp.spawn(_worker, args=(2, _free_port(), str(out), str(results)), nprocs=2, join=True)
    r0 = torch.load(results / "rank0.pt", weights_only=True)
    r1 = torch.load(results / "rank1.pt", weights_only=True)
    assert r0["world"] == r1["world"] == 2
    assert r0["weights"].keys() == r1["weights"].keys()
    assert all(torch.equal(r0["weights"][k], r1["weights"][k]) for k in r0["weights"])
    hist = r0["history"]
    # metrics are all-reduced: every rank reports the same numbers (all but the wall-clock seconds)
    assert [{**h, "seconds": 0} for h in hist] == [{**h, "seconds": 0} for h in r1["history"]]
    assert hist[-1]["train_loss"] < 0.7 * hist[0]["train_loss"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["val"]["n"] == 200  # the sharded validation counted every sample exactly once
    assert metrics["global_step"] == 4 * 7  # 100 samples per rank / 16 = 7 steps per epoch


@pytest.mark.slow
def test_torchrun_cli(tmp_path):
    """The documented command: torchrun --nproc_per_node 2 -m cnnkit train ..."""
    torchrun = Path(sys.executable).parent / "torchrun"
    out = tmp_path / "run"
    cmd = [str(torchrun), "--nproc_per_node", "2", "--master_port", str(_free_port()), "-m", "cnnkit", "train",
           "--model", "lenet5", "--data", "digits", "--epochs", "2", "--out", str(out), "--no-progress"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-2000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test"]["accuracy"] > 0.5
    assert done.stdout.count("done:") == 1  # only rank 0 speaks

"""Shared test set-up: deterministic seeds, and a CLI runner that captures output and exit code."""

from __future__ import annotations

import os

os.environ.setdefault("MPLBACKEND", "Agg")

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

# Test files are imported by path (--import-mode=importlib, see pyproject); helper modules beside them
# (cocodata.py, annotation_strategies.py, toy_box.py ...) are imported by name from these folders.
# The repository root too: pytest names test modules tests.<room>.test_x, and processes started by
# multiprocessing's spawn (DDP tests) import their worker functions by that name.
_tests = Path(__file__).parent
for _room in [_tests.parent, *sorted(p for p in _tests.rglob("*") if p.is_dir() and p.name != "__pycache__")]:
    if str(_room) not in sys.path:
        sys.path.append(str(_room))


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread():
    """Run the suite's torch code on one thread.

    Its layers are small: a second intra-op thread gains little, and where another process shares the two cores
    (a second test run, a build) the threads wait on each other and forward passes get 10-100x slower.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(autouse=True)
def _seed():
    np.random.seed(0)
    torch.manual_seed(0)


@pytest.fixture
def run_cli(capsys):
    """Run `cnnkit ARGS...` in-process; returns (exit_code, stdout, stderr)."""
    from cnnkit.cli.main import main

    def _run(*args: str):
        try:
            code = main([str(a) for a in args])
        except SystemExit as e:  # argparse usage errors
            code = e.code
        out, err = capsys.readouterr()
        return code, out, err

    return _run

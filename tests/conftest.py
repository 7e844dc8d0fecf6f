"""Shared test set-up: deterministic seeds, and a CLI runner that captures output and exit code."""

from __future__ import annotations

import os

os.environ.setdefault("MPLBACKEND", "Agg")

import numpy as np
import pytest
import torch


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

"""What a run writes for people to read: log.csv (one row per epoch), metrics.json and curves.png."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any

from cnnkit.io import atomic_write, save_figure

HISTORY_COLUMNS = ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds"]


def _clean(value: Any) -> Any:
    """JSON has no NaN or infinity: write them as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def write_history_csv(path: str | Path, history: list[dict[str, Any]]) -> Path:
    """One row per epoch, columns HISTORY_COLUMNS (then any extra keys the rows hold), atomically."""
    extra = sorted({k for row in history for k in row} - set(HISTORY_COLUMNS))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=HISTORY_COLUMNS + extra, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in history:
        writer.writerow({k: ("" if v is None else v) for k, v in row.items()})
    with atomic_write(path, "w") as f:
        f.write(buf.getvalue())
    return Path(path)


def write_json(path: str | Path, data: dict[str, Any]) -> Path:
    """Pretty JSON, NaN written as null, atomically."""
    with atomic_write(path, "w") as f:
        json.dump(_clean(data), f, indent=2)
        f.write("\n")
    return Path(path)


def plot_curves(history: list[dict[str, Any]], title: str = "") -> Any:
    """A figure with two panels: loss and accuracy per epoch, train vs validation."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    epochs = [row["epoch"] for row in history]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, key, label in ((axes[0], "loss", "loss (cross-entropy)"), (axes[1], "acc", "accuracy")):
        for split, style in (("train", "-o"), ("val", "-s")):
            ys = [row.get(f"{split}_{key}") for row in history]
            if any(y is not None for y in ys):
                ax.plot(epochs, [math.nan if y is None else y for y in ys], style, ms=3, label=split)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend()
    if history and all(row.get("val_acc") is not None for row in history):
        best = max(history, key=lambda r: r["val_acc"])
        axes[1].annotate(f"best val {best['val_acc']:.3f}", (best["epoch"], best["val_acc"]),
                         textcoords="offset points", xytext=(-40, -25), arrowprops={"arrowstyle": "->"})
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def save_curves(path: str | Path, history: list[dict[str, Any]], title: str = "") -> Path:
    """Write curves.png for `history` (atomic)."""
    return save_figure(path, plot_curves(history, title))

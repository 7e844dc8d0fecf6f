"""What a run writes for people to read: log.csv (one row per epoch), metrics.json and curves.png."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any

from cnnkit.io import atomic_write, save_figure

HISTORY_COLUMNS = ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds"]  # classification's


def _clean(value: Any) -> Any:
    """JSON has no NaN or infinity: write them as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def history_columns(history: list[dict[str, Any]]) -> list[str]:
    """The loop's own columns of a history, in its order: the first row's keys up to "seconds" (callbacks may
    append others after it); HISTORY_COLUMNS for an empty history."""
    if not history:
        return list(HISTORY_COLUMNS)
    keys = list(history[0])
    return keys[: keys.index("seconds") + 1] if "seconds" in keys else keys


def write_history_csv(path: str | Path, history: list[dict[str, Any]], columns: list[str] | None = None) -> Path:
    """One row per epoch, atomically: `columns` (default HISTORY_COLUMNS), then any extra keys the rows hold
    (sorted)."""
    columns = list(columns or HISTORY_COLUMNS)
    extra = sorted({k for row in history for k in row} - set(columns))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns + extra, extrasaction="ignore", lineterminator="\n")
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


def plot_curves(history: list[dict[str, Any]], title: str = "", *, metric: str = "acc", metric_label: str = "accuracy",
                loss_label: str = "loss (cross-entropy)", mode: str = "max") -> Any:
    """A figure with two panels: the loss and a metric per epoch, train vs validation.

    Args:
        history: rows with train_loss/val_loss and train_<metric>/val_<metric> (missing ones are not drawn).
        title: the figure's title.
        metric: the rows' key suffix of the second panel (classification: "acc"; a task's `row_key()`).
        metric_label, loss_label: the panels' axis labels.
        mode: "max" or "min": which value of val_<metric> is marked as the best.
    """
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    epochs = [row["epoch"] for row in history]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, key, label in ((axes[0], "loss", loss_label), (axes[1], metric, metric_label)):
        for split, style in (("train", "-o"), ("val", "-s")):
            ys = [row.get(f"{split}_{key}") for row in history]
            if any(y is not None for y in ys):
                ax.plot(epochs, [math.nan if y is None else y for y in ys], style, ms=3, label=split)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        if ax.get_lines():
            ax.legend()
        else:  # e.g. a task without a training statistic, run without validation data
            ax.text(0.5, 0.5, f"no {label} recorded", ha="center", va="center", transform=ax.transAxes)
    val_key = f"val_{metric}"
    if history and all(isinstance(row.get(val_key), (int, float)) for row in history):
        best = (max if mode == "max" else min)(history, key=lambda r: r[val_key])
        axes[1].annotate(f"best val {best[val_key]:.3f}", (best["epoch"], best[val_key]),
                         textcoords="offset points", xytext=(-40, -25), arrowprops={"arrowstyle": "->"})
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def save_curves(path: str | Path, history: list[dict[str, Any]], title: str = "", **kwargs: Any) -> Path:
    """Write curves.png for `history` (atomic); kwargs as `plot_curves`."""
    return save_figure(path, plot_curves(history, title, **kwargs))

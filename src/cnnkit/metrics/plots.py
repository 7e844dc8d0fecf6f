"""Precision-recall curves per class as a matplotlib figure (for `cnnkit evaluate` and the tour).

    fig = plot_pr_curves(evaluate_detections(preds, targets), class_names={1: "circle", 2: "square"})
    cnnkit.io.save_figure("pr.png", fig)
"""

from __future__ import annotations

import numpy as np

from cnnkit.metrics.coco import RECALL_THRESHOLDS, COCOEvalResult

__all__ = ["plot_pr_curves"]


def plot_pr_curves(result, class_names: dict | None = None, *, iou_threshold: float = 0.5, max_classes: int = 20,
                   title: str | None = None, ax=None):
    """One precision-recall curve per class, with its AP in the legend.

    Args:
        result: a `COCOEvalResult` (curves at the 101 COCO recall points, `iou_threshold` picks which), or the
            dict `evaluate_voc` returns (its all-point curves), or {class: (recall[n], precision[n])}.
        class_names: {class id: name} for the legend; ids are shown otherwise.
        iou_threshold: for a COCOEvalResult: 0.5, 0.55, ..., 0.95.
        max_classes: draw at most this many classes (those with the highest AP).
        title: figure title; default says which IoU threshold.
        ax: draw into this matplotlib Axes instead of a new figure.

    Returns:
        The matplotlib Figure.
    """
    import matplotlib.pyplot as plt

    names = class_names or {}
    curves: dict = {}
    aps: dict = {}
    if isinstance(result, COCOEvalResult):
        if not names and result.cat_names:
            names = result.cat_names
        for cat, prec in result.pr_curves(iou_threshold).items():
            if (prec > -1).any():
                curves[cat] = (RECALL_THRESHOLDS, prec)
        aps = result.per_class_ap(iou_threshold)
        kind = f"COCO 101-point, IoU {iou_threshold:.2f}"
    else:
        raw = result.get("pr_curves", result) if isinstance(result, dict) else result
        for cat, (rec, prec) in raw.items():
            if len(rec):
                curves[cat] = (np.asarray(rec), np.asarray(prec))
        from cnnkit.metrics.voc import voc_ap

        if isinstance(result, dict) and "ap_per_class" in result:
            aps = result["ap_per_class"]
        else:
            aps = {c: voc_ap(*curves[c]) for c in curves}
        kind = "all-point"
    if ax is None:
        fig, ax = plt.subplots(figsize=(6, 5))
    else:
        fig = ax.figure
    shown = sorted(curves, key=lambda c: -aps.get(c, 0))[:max_classes]
    for cat in shown:
        rec, prec = curves[cat]
        ax.step(rec, prec, where="post", label=f"{names.get(cat, cat)} (AP {aps.get(cat, float('nan')):.3f})")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.grid(alpha=0.3)
    ax.set_title(title or f"Precision-recall per class ({kind})")
    if shown:
        ax.legend(fontsize=8, loc="lower left")
    else:
        ax.text(0.5, 0.5, "no class has ground truth", ha="center", va="center")
    return fig

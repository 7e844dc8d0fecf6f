"""The detector comparison on the built-in scenes: sliding windows, R-CNN, Fast R-CNN, Faster R-CNN and YOLO, each
trained on the same scenes and measured on the same held-out ones: COCO mAP@0.5 and mAP@0.5:0.95, time per image
(batch of one, proposals included) and training time. Used by benchmarks/bench_detectors.py and the tour.

R-CNN and Fast R-CNN are trained on the proposals of one selective-search strategy (8x cheaper than the 8 of
"fast" mode, proposals computed once and cached: no augmentation for them) and tested with the full proposer.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
import torch

DETECTORS = ("sliding windows", "R-CNN", "Fast R-CNN", "Faster R-CNN", "YOLO")
MODELS = {"R-CNN": "rcnn_darknet_tiny", "Fast R-CNN": "fast_rcnn_darknet_tiny",
          "Faster R-CNN": "faster_rcnn_darknet_tiny", "YOLO": "yolo_tiny"}


@dataclass
class Budget:
    """How much each detector trains (scenes, epochs) and how many held-out scenes measure it."""

    n_train: int = 400
    n_test: int = 100
    epochs: dict[str, int] = field(default_factory=lambda: {"R-CNN": 4, "Fast R-CNN": 6, "Faster R-CNN": 8,
                                                            "YOLO": 10, "sliding windows": 6})
    n_time: int = 20        # held-out scenes timed per detector
    max_proposals: int = 200


@dataclass
class Result:
    name: str
    model: str
    map50: float
    map: float
    ms_per_image: float
    train_seconds: float
    proposal_ms: float = 0.0   # of ms_per_image: selective search (R-CNN, Fast R-CNN)


def _ss_single(image: torch.Tensor, max_proposals: int) -> torch.Tensor:
    from cnnkit.detect.rcnn.proposals import SINGLE, selective_search

    u8 = (image.detach().cpu().clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    return selective_search(u8, strategies=SINGLE, max_proposals=max_proposals)


def scenes(n_train: int, n_test: int, seed: int, augment: bool):
    from cnnkit.augment import build_transform
    from cnnkit.data.scene_dataset import load_scenes
    from cnnkit.detect.task import DEFAULT_DETECTION_AUGMENT

    aug = build_transform(DEFAULT_DETECTION_AUGMENT, image_size=128, seed=seed) if augment else None
    parts = load_scenes(train=n_train, val=0, test=n_test, size=128, seed=seed, transform=aug, progress=False,
                        masks=False)
    return parts.get("train"), parts.get("test")


def train_detector(name: str, budget: Budget, seed: int) -> tuple[torch.nn.Module, float]:
    """A registered detector trained with its task's defaults for `budget.epochs[name]` epochs."""
    from cnnkit.models import create_model
    from cnnkit.tasks import task_for_model
    from cnnkit.train import fit
    from cnnkit.train.config import TrainConfig

    proposal_based = name in ("R-CNN", "Fast R-CNN")
    train, _ = scenes(budget.n_train, 0, seed, augment=not proposal_based)
    torch.manual_seed(seed)
    model = create_model(MODELS[name], num_classes=len(train.classes))
    task = task_for_model(model)
    model = create_model(MODELS[name], **task.model_kwargs(train, verbose=False))
    task = task_for_model(model)
    if proposal_based:
        model.proposer = partial(_ss_single, max_proposals=budget.max_proposals)
    cfg = TrainConfig(**{**task.train_defaults, "epochs": budget.epochs[name], "seed": seed})
    t = time.perf_counter()
    fit(model, train, None, cfg, task=task, progress=False)
    seconds = time.perf_counter() - t
    if proposal_based:
        from cnnkit.detect.rcnn.fast_rcnn import default_proposer

        model.proposer = default_proposer(budget.max_proposals)
        model._cache.clear()
    return model.eval(), seconds


@torch.no_grad()
def detect_one(name: str, model, image: torch.Tensor) -> dict[str, torch.Tensor]:
    """Detections (labels 0-based) of one (3, H, W) image in [0, 1], scores down to 0.001 (mAP ranks them all)."""
    from cnnkit.detect.task import EVAL_SCORE_THRESHOLD

    if name == "YOLO":
        return model.detect(image[None], score_threshold=EVAL_SCORE_THRESHOLD, iou_threshold=0.5,
                            max_detections=100)[0]
    if name == "sliding windows":
        from cnnkit.detect.sliding_window import detect_windows, naive_sliding_window

        net, window, stride = model
        logits, boxes = naive_sliding_window(net, image, window=window, stride=stride)
        det = detect_windows(logits, boxes, score_threshold=EVAL_SCORE_THRESHOLD, iou_threshold=0.3)
        return {**det, "labels": det["labels"] - 1}
    det = model.detect_raw(model.forward_raw(image[None]), score_thresh=EVAL_SCORE_THRESHOLD)[0]
    return {**det, "labels": det["labels"] - 1}


def measure(name: str, model, test, budget: Budget) -> tuple[dict[str, Any], float, float]:
    """(COCO metrics over the held-out scenes, milliseconds per image over the first n_time of them, of which
    selective search)."""
    from cnnkit.detect.task import detection_map

    preds, gts, times, props = [], [], [], []
    for i in range(len(test)):
        image, target = test[i]
        t = time.perf_counter()
        if hasattr(model, "_cache") and i < budget.n_time:
            model._cache.pop(model.cache_key(image), None)  # proposals are part of the time of R-CNN and Fast R-CNN
            model.propose(image)
            props.append(time.perf_counter() - t)
        det = detect_one(name, model, image)
        if i < budget.n_time:
            times.append(time.perf_counter() - t)
        preds.append({k: v.cpu() for k, v in det.items()})
        gts.append({"boxes": target["boxes"], "labels": target["labels"]})
    ms = 1000 * float(np.median(times))
    return detection_map(preds, gts, list(test.classes)), ms, 1000 * float(np.median(props[: budget.n_time] or [0]))


def train_sliding_windows(budget: Budget, seed: int):
    """The window classifier of the sliding-window lesson (32 x 32 windows), run at stride 8."""
    from cnnkit.tour.sections.s100_localization import train_window_classifier

    t = time.perf_counter()
    net, _, _, _ = train_window_classifier(seed, quick=budget.epochs["sliding windows"] <= 1)
    return (net.eval(), 32, 8), time.perf_counter() - t


def compare(budget: Budget | None = None, seed: int = 0, names=DETECTORS, models: dict | None = None,
            log=print) -> tuple[list[Result], dict[str, Any]]:
    """Train (or take from `models`: name -> (model, train seconds)) and measure every detector.

    Returns:
        (results in `names` order, {name: (model, train seconds)} to cache).
    """
    budget = budget or Budget()
    _, test = scenes(0, budget.n_test, seed, augment=False)
    models = dict(models or {})
    shared: OrderedDict = OrderedDict()  # R-CNN and Fast R-CNN reuse the untimed scenes' proposals
    out = []
    for name in names:
        if name not in models:
            models[name] = (train_sliding_windows(budget, seed) if name == "sliding windows"
                            else train_detector(name, budget, seed))
        model, seconds = models[name]
        if hasattr(model, "_cache"):
            model._cache = shared
        metrics, ms, prop_ms = measure(name, model, test, budget)
        out.append(Result(name, MODELS.get(name, "window_net32"), metrics["map50"], metrics["map"], ms, seconds,
                          prop_ms))
        log(f"{name:<16} mAP@0.5 {metrics['map50']:.3f}  mAP@[.5:.95] {metrics['map']:.3f}  {ms:8.1f} ms/image "
            f"(proposals {prop_ms:.1f})  trained {seconds:6.1f} s")
    return out, models


def ratios(results: list[Result]) -> dict[str, float]:
    """Time per image of each detector over YOLO's (the fastest, as the curriculum claims)."""
    base = next((r.ms_per_image for r in results if r.name == "YOLO"), None) or min(r.ms_per_image for r in results)
    return {r.name: r.ms_per_image / base for r in results}


def table(results: list[Result]) -> tuple[list[list], list[str]]:
    ratio = ratios(results)
    rows = [[r.name, r.model, round(r.map50, 3), round(r.map, 3), round(r.ms_per_image, 1),
             round(r.ms_per_image - r.proposal_ms, 1), f"{ratio[r.name]:.1f}x", round(r.train_seconds, 1)]
            for r in results]
    return rows, ["detector", "model", "mAP@0.5", "mAP@0.5:0.95", "ms / image", "ms without selective search",
                  "time vs YOLO", "training (s)"]


def plot(results: list[Result]):
    """mAP@0.5 against time per image (log scale), one point per detector."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 5), layout="constrained")
    markers = "osD^vP*X"
    for i, r in enumerate(results):  # named in a legend: detectors of similar speed and mAP overlap on the plot
        ax.scatter(r.ms_per_image, r.map50, s=70, marker=markers[i % len(markers)], alpha=0.85,
                   label=f"{r.name}: {r.ms_per_image:.0f} ms, mAP@0.5 {r.map50:.2f}, @[.5:.95] {r.map:.2f}")
    fig.legend(fontsize=8, loc="outside lower center", ncols=2, frameon=False)
    ax.set_xscale("log")
    ax.set_xlabel("time per image (ms, log scale, batch of 1, proposals included)")
    ax.set_ylabel("mAP@0.5 on held-out scenes")
    ax.set_ylim(-0.05, 1.05)
    ax.grid(alpha=0.3)
    ax.set_title("Detectors on the same scenes")
    return fig


def ordered(results: list[Result]) -> bool:
    """Whether time per image orders R-CNN > Fast R-CNN > Faster R-CNN > YOLO."""
    t = {r.name: r.ms_per_image for r in results}
    chain = [n for n in ("R-CNN", "Fast R-CNN", "Faster R-CNN", "YOLO") if n in t]
    return all(t[a] > t[b] for a, b in zip(chain, chain[1:], strict=False))

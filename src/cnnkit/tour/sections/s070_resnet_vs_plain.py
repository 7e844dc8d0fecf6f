"""Tour: why residual networks. Plain and residual CIFAR-style networks of 20 and 56 layers, trained alike.

Reproduces, on the built-in digits, the two observations the course makes about very deep networks:
the deeper plain network trains worse than the shallower one (degradation; a residual network of the same
depth does not), and the gradients reaching its early layers are far from those of its last layers
(with BatchNorm they explode towards the input; without it they vanish), while the shortcuts keep them
within a small factor.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from cnnkit.threads import torch_threads

TITLE = "Why residual networks: plain vs ResNet"
ORDER = 70

# Small images and narrow layers keep a 56-layer network at ~0.1 s per step on one CPU core; the effect
# depends on depth, not on width.
IMAGE_SIZE = 16
WIDTH = 8




@dataclass
class RunResult:
    """One network's training run."""

    name: str
    depth: int
    residual: bool
    params: int
    losses: list[float]  # per step
    smoothed: np.ndarray
    grad_layers: list[str]
    grad_norms: np.ndarray  # mean over the first steps, per conv layer, input to output
    train_loss: float  # mean over the last epoch
    train_acc: float
    val_acc: float | None
    seconds: float
    extra: dict = field(default_factory=dict)


def load_digits(seed: int, n_train: int | None = None):
    """Digits at IMAGE_SIZE, 1 channel: train (optionally its first n_train images) and val."""
    from torch.utils.data import Subset

    from cnnkit.data import load_dataset

    train = load_dataset("digits", split="train", image_size=IMAGE_SIZE, in_chans=1, seed=seed)
    val = load_dataset("digits", split="val", image_size=IMAGE_SIZE, in_chans=1, seed=seed)
    if n_train is not None and n_train < len(train):
        train = Subset(train, range(n_train))
    return train, val


def train_one(name: str, train, val, *, epochs: int, seed: int, lr: float = 0.1, grad_steps: int = 10) -> RunResult:
    """Train `name` (e.g. "plain56_cifar") with SGD, recording per-step losses and early gradient norms."""
    import torch

    from cnnkit.models import create_model
    from cnnkit.train import TrainConfig, fit
    from cnnkit.train.grad_stats import GradNormRecorder, LossRecorder

    torch.manual_seed(seed)
    model = create_model(name, num_classes=10, in_chans=1, width=WIDTH)
    grads, losses = GradNormRecorder(max_steps=grad_steps), LossRecorder()
    # one warm-up epoch as the paper's ResNet-110: lr 0.1 from the first step can throw a deep ResNet off
    cfg = TrainConfig(epochs=epochs, batch_size=64, optimizer="sgd", lr=lr, momentum=0.9, weight_decay=1e-4,
                      schedule="cosine", warmup_epochs=min(1.0, epochs / 2), seed=seed)
    start = time.perf_counter()
    result = fit(model, train, val, cfg, callbacks=[grads, losses], progress=False)
    seconds = time.perf_counter() - start
    last = result.history[-1]
    return RunResult(
        name=name, depth=model.depth, residual=model.residual, params=sum(p.numel() for p in model.parameters()),
        losses=losses.losses, smoothed=losses.smoothed(10), grad_layers=grads.layer_names,
        grad_norms=grads.as_array().mean(axis=0), train_loss=float(last["train_loss"]),
        train_acc=float(last["train_acc"]), val_acc=last["val_acc"], seconds=seconds,
    )


def init_grad_norms(name: str, train, *, seed: int, batches: int = 3, **model_kwargs) -> np.ndarray:
    """Mean per-conv-layer gradient norm at initialisation, over a few batches (no update in between)."""
    import torch
    import torch.nn.functional as F

    from cnnkit.models import create_model
    from cnnkit.train.grad_stats import layer_grad_norms

    torch.manual_seed(seed)
    model = create_model(name, num_classes=10, in_chans=1, width=WIDTH, **model_kwargs)
    loader = torch.utils.data.DataLoader(train, batch_size=64, shuffle=True,
                                         generator=torch.Generator().manual_seed(seed))
    rows = []
    for i, (x, y) in enumerate(loader):
        if i == batches:
            break
        model.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        rows.append(list(layer_grad_norms(model).values()))
    return np.asarray(rows).mean(axis=0)


def edge_ratio(norms: np.ndarray, k: int = 3) -> float:
    """Mean gradient norm of the first k conv layers over that of the last k (1: balanced)."""
    return float(np.mean(norms[:k]) / max(np.mean(norms[-k:]), 1e-30))


def _times(x: float) -> str:
    return f"{x:.3g}x" if x >= 1e-6 else "less than 1e-6 times"


def _loss_figure(runs: list[RunResult]):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    colors = {20: "tab:blue", 56: "tab:red", 32: "tab:green", 44: "tab:purple"}
    for r in runs:
        ax.plot(np.arange(1, len(r.smoothed) + 1), r.smoothed, color=colors.get(r.depth, "black"),
                linestyle="-" if r.residual else "--", linewidth=2 if r.residual else 1.6,
                label=f"{'ResNet' if r.residual else 'plain'}-{r.depth}")
    ax.set_yscale("log")
    ax.set_xlabel("optimizer step (batches of 64)")
    ax.set_ylabel("training loss (moving average of 10 steps)")
    ax.set_title("Same layers, same data, same optimizer: only the shortcuts differ")
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    return fig


def _grad_figure(panels: list[tuple[str, np.ndarray, np.ndarray]], depth: int):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(6.2 * len(panels), 4.0), squeeze=False)
    for ax, (title, plain, res) in zip(axes[0], panels, strict=True):
        ax.semilogy(np.arange(1, len(plain) + 1), plain, "--", color="tab:red", label=f"plain-{depth}")
        ax.semilogy(np.arange(1, len(res) + 1), res, "-", color="tab:green", label=f"ResNet-{depth}")
        ax.set_xlabel("convolution layer (1 = next to the input)")
        ax.set_ylabel("gradient norm of the layer's weights")
        ax.set_title(title)
        ax.grid(alpha=0.3, which="both")
        ax.legend()
    fig.tight_layout()
    return fig


def build(section, ctx) -> None:
    depths = (56,) if ctx.quick else (20, 56)
    epochs = 1 if ctx.quick else 6
    with torch_threads(1):
        train, val = load_digits(ctx.seed, n_train=320 if ctx.quick else None)
        runs = [train_one(f"{kind}{d}_cifar", train, val, epochs=epochs, seed=ctx.seed)
                for d in depths for kind in ("plain", "resnet")]
        deep = max(depths)
        no_bn = dict(norm="none", init="default")
        no_bn = dict(no_bn, batches=1 if ctx.quick else 3)
        plain_nobn = init_grad_norms(f"plain{deep}_cifar", train, seed=ctx.seed, **no_bn)
        res_nobn = init_grad_norms(f"resnet{deep}_cifar", train, seed=ctx.seed, **no_bn)

    by_name = {r.name: r for r in runs}
    p_deep, r_deep = by_name[f"plain{deep}_cifar"], by_name[f"resnet{deep}_cifar"]
    section.text(
        f"Plain and residual networks of {' and '.join(map(str, depths))} layers (He et al. 2016's CIFAR "
        f"networks: 3 stages of 3x3 convolutions with BatchNorm, {WIDTH}/{2 * WIDTH}/{4 * WIDTH} channels here) "
        f"trained on the built-in digits at {IMAGE_SIZE}x{IMAGE_SIZE} for {epochs} epoch{'s' * (epochs > 1)} "
        "with SGD (momentum 0.9, lr 0.1 after a warm-up, cosine decay), the same seed and data order. The residual "
        "networks differ from the plain ones "
        "only by the identity shortcuts (option A: no extra parameters)."
    )
    section.figure(_loss_figure(runs), "training-loss",
                   "Training loss per step. Plain (dashed) vs residual (solid). In theory a deeper network can "
                   "do at least as well as a shallower one (its extra layers could be identities); in practice "
                   "the deep plain network is harder to optimise.")
    rows = [[("ResNet" if r.residual else "plain") + f"-{r.depth}", r.params, r.train_loss, r.train_acc,
             r.val_acc if r.val_acc is not None else "", edge_ratio(r.grad_norms), round(r.seconds, 1)]
            for r in runs]
    section.table(rows, ["network", "parameters", "train loss (last epoch)", "train accuracy", "val accuracy",
                         "grad first/last 3 convs", "seconds"],
                  caption="Same parameters, different training: degradation is an optimisation problem")
    bn_ratio, nobn_ratio = edge_ratio(p_deep.grad_norms), edge_ratio(plain_nobn)
    left = ("with BatchNorm the plain network's gradients grow towards the input (exploding)" if bn_ratio > 2 else
            "with BatchNorm the plain network's gradients stay within a factor 2 from end to end in this run")
    right = ("without normalisation they shrink towards the input (vanishing; a norm below 1e-30 is off the scale)"
             if nobn_ratio < 0.5 else "without normalisation they did not shrink towards the input in this run")
    section.figure(
        _grad_figure([("with BatchNorm (as trained above), first 10 steps", p_deep.grad_norms, r_deep.grad_norms),
                      ("without BatchNorm, PyTorch's default init, at init", plain_nobn, res_nobn)], deep),
        "gradient-norms",
        f"Gradient norm of every convolution's weights. Left: {left}. Right: {right}. Shortcuts give every layer "
        "a short path to the loss.",
    )
    shown = p_deep.train_loss > r_deep.train_loss
    lines = [f"Degradation: plain-{deep} ends at training loss {p_deep.train_loss:.3f}, ResNet-{deep} at "
             f"{r_deep.train_loss:.3f}" + (" (the residual network trains further on the same budget)." if shown else
                                          "; in this run the plain network did not end worse" +
                                          (": quick mode (1 epoch on 320 images) is too short to show degradation; "
                                           "the full tour trains 6 epochs." if ctx.quick else
                                           ", contrary to the lesson: rerun with another --seed to see whether it "
                                           "holds."))]
    if 20 in depths and deep > 20:
        p20, r20 = by_name["plain20_cifar"], by_name["resnet20_cifar"]
        worse = "higher" if p_deep.train_loss > p20.train_loss else "not higher"
        verdict = ("with shortcuts, extra depth no longer costs trainability (the paper's deeper ResNets pull "
                   "ahead after longer training than fits here)" if r_deep.train_loss <= 2 * r20.train_loss + 0.02
                   else "in this short run the deeper ResNet still lags, but far less than the plain network")
        lines.append(f"The deeper plain network ends {worse} than plain-20 ({p20.train_loss:.3f}); ResNet-{deep} ends "
                     f"at {r_deep.train_loss:.3f} against ResNet-20's {r20.train_loss:.3f}: {verdict}.")
    lines.append(
        f"Gradients: the first three convolutions of plain-{deep} get {_times(edge_ratio(p_deep.grad_norms))} the "
        f"gradient of its last three with BatchNorm and {_times(edge_ratio(plain_nobn))} without it; for "
        f"ResNet-{deep} the factors are {_times(edge_ratio(r_deep.grad_norms))} and {_times(edge_ratio(res_nobn))}."
    )
    lines.append(
        "The course speaks of vanishing gradients: that is what a deep plain network without normalisation shows "
        "(right). With BatchNorm, which the ResNet paper used and where it argues vanishing gradients are not the "
        "cause of degradation, the plain network's gradients instead grow towards the input (left). Either way "
        "the shortcuts give every layer a short path to the loss, and its gradient a sensible size."
    )
    section.text(" ".join(lines))

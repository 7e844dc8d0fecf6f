"""Tour: transfer learning. Freeze the backbone (with a feature cache), fine-tune its last stage, or start over.

There are no downloadable pretrained weights here, so the "pretrained" network is made honestly, in the
section: a small ResNet is trained on one task (digits 0-4), saved as a weights file, then transferred to a
different task with few labels (digits 5-9, a handful of labelled images per class) in the ways the
course compares. Every setting sees the same labelled images, in the same order, for the same number of
steps, and is scored on the same held-out images.
"""

from __future__ import annotations

import copy
import time
from pathlib import Path

from cnnkit.threads import torch_threads

TITLE = "Transfer learning: freeze, fine-tune or train from scratch"
ORDER = 80

IMAGE_SIZE = 16
MODEL = "resnet20_cifar"
MODEL_KWARGS = {"num_classes": 5, "in_chans": 1, "width": 16}
SOURCE_CLASSES = (0, 1, 2, 3, 4)
TARGET_CLASSES = (5, 6, 7, 8, 9)


def load_digits(seed: int) -> dict:
    """Every split of the built-in digits at IMAGE_SIZE as tensors: {split: (images (N, 1, S, S), digits (N,))}."""
    import torch

    from cnnkit.data import load_dataset

    out = {}
    for split in ("train", "val", "test"):
        ds = load_dataset("digits", split=split, image_size=IMAGE_SIZE, in_chans=1, seed=seed)
        out[split] = (torch.stack([ds[i][0] for i in range(len(ds))]), torch.tensor(ds.targets))
    return out


def select(pair, classes: tuple[int, ...]):
    """The images of the given digits, labelled 0..len(classes)-1 in that order."""
    import torch

    x, digits = pair
    keep = torch.isin(digits, torch.tensor(classes))
    return x[keep], torch.tensor([classes.index(d) for d in digits[keep].tolist()])


def few_shot(x, y, per_class: int, seed: int):
    """`per_class` images of each class, drawn with `seed`."""
    import torch

    g = torch.Generator().manual_seed(seed)
    picks = []
    for c in y.unique().tolist():
        idx = (y == c).nonzero().flatten()
        picks.append(idx[torch.randperm(len(idx), generator=g)[:per_class]])
    keep = torch.cat(picks).sort().values
    return x[keep], y[keep]


def pretrain(digits: dict, out_dir: Path, seed: int, epochs: int) -> tuple[Path, dict]:
    """Train the source network on digits 0-4 and save it.

    Returns:
        The weights file, and facts for the report: images, val_acc, seconds.
    """
    import torch
    from torch.utils.data import TensorDataset

    from cnnkit.checkpoint import save_model_file
    from cnnkit.models import create_model
    from cnnkit.train import TrainConfig, fit

    xs, ys = select(digits["train"], SOURCE_CLASSES)
    xv, yv = select(digits["val"], SOURCE_CLASSES)
    torch.manual_seed(seed)
    model = create_model(MODEL, **MODEL_KWARGS)
    cfg = TrainConfig(epochs=epochs, batch_size=64, optimizer="adamw", lr=3e-3, schedule="cosine", seed=seed)
    start = time.perf_counter()
    result = fit(model, TensorDataset(xs, ys), TensorDataset(xv, yv), cfg, progress=False)
    seconds = time.perf_counter() - start
    path = save_model_file(out_dir / "transfer-pretrained-digits0-4.safetensors", model,
                           {"model": MODEL, "model_kwargs": MODEL_KWARGS, "classes": [str(c) for c in SOURCE_CLASSES],
                            "input_size": [1, IMAGE_SIZE, IMAGE_SIZE]})
    return path, {"images": len(ys), "val_acc": float(result.history[-1]["val_acc"]), "seconds": seconds}


SETTINGS = [
    # (label, load weights, apply_transfer kwargs, train on cached features)
    ("from scratch", False, {}, False),
    ("freeze backbone (through it)", True, {"freeze": "backbone"}, False),
    ("freeze backbone (feature cache)", True, {"freeze": "backbone"}, True),
    ("fine-tune last stage", True, {"finetune_last": 1}, False),
    ("fine-tune everything", True, {}, False),
]


def run_settings(weights: Path, train, test, *, steps: int, seed: int, cache_dir: Path,
                 settings: list[tuple] | None = None, lr: float = 3e-3) -> list[dict]:
    """Train each setting on the few labelled target images for about `steps` optimizer steps.

    Returns:
        One dict per setting: setting, accuracy (on `test`), seconds, trainable and total parameters.
    """
    import torch

    from cnnkit.models import create_model
    from cnnkit.train import TrainConfig, evaluate, fit
    from cnnkit.train.feature_cache import fit_head_on_cache
    from cnnkit.train.transfer import apply_transfer, count_trainable

    batch_size = 16
    epochs = max(1, round(steps / -(-len(train) // batch_size)))  # the same number of steps whatever the data size
    cfg = TrainConfig(epochs=epochs, batch_size=batch_size, optimizer="adamw", lr=lr, schedule="cosine", seed=seed)
    torch.manual_seed(seed + 1)
    fresh = create_model(MODEL, **MODEL_KWARGS)  # one initialisation of the new head, shared by every setting
    rows = []
    for label, use_weights, kwargs, cached in settings or SETTINGS:
        model = copy.deepcopy(fresh)
        head = copy.deepcopy(model.get_classifier().state_dict())
        apply_transfer(model, weights=weights if use_weights else None, **kwargs)
        model.get_classifier().load_state_dict(head)  # not the source task's classifier: a new head for everyone
        trainable, total = count_trainable(model)
        start = time.perf_counter()
        if cached:
            fit_head_on_cache(model, train, None, cfg, cache_dir=cache_dir, progress=False)
        else:
            fit(model, train, None, cfg, progress=False)
        seconds = time.perf_counter() - start
        rows.append({"setting": label, "accuracy": evaluate(model, test)["accuracy"], "seconds": seconds,
                     "trainable": trainable, "total": total, "epochs": epochs})
    return rows


def _bar_figure(rows: list[dict], per_class: int, n_test: int):
    import matplotlib.pyplot as plt

    labels = [r["setting"] for r in rows]
    acc = [r["accuracy"] for r in rows]
    secs = [r["seconds"] for r in rows]
    colors = [COLORS[r["setting"]] for r in rows]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 3.8))
    a1.barh(labels, acc, color=colors)
    for i, v in enumerate(acc):
        a1.text(v + 0.01, i, f"{v:.1%}", va="center")
    a1.set_xlim(0, 1.15)
    a1.invert_yaxis()
    a1.set_xlabel(f"accuracy on {n_test} held-out images of digits 5-9")
    a1.set_title(f"{per_class} labelled images per class")
    a2.barh(labels, secs, color=colors)
    for i, v in enumerate(secs):
        a2.text(v, i, f" {v:.2f} s", va="center")
    a2.invert_yaxis()
    a2.set_yticklabels([])
    a2.set_xlim(0, max(secs) * 1.35)
    a2.set_xlabel("training time (s)")
    a2.set_title("cost of training")
    fig.tight_layout()
    return fig


def _sweep_figure(sweep: dict[int, list[dict]]):
    import matplotlib.pyplot as plt

    counts = sorted(sweep)
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for setting in [r["setting"] for r in sweep[counts[0]]]:
        acc = [next(r["accuracy"] for r in sweep[c] if r["setting"] == setting) for c in counts]
        ax.plot(counts, acc, "o-", color=COLORS[setting], label=setting)
    ax.set_xscale("log")
    ax.set_xticks(counts, [str(c) for c in counts])
    ax.minorticks_off()
    ax.set_xlabel("labelled images per class (log scale)")
    ax.set_ylabel("held-out accuracy")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    ax.set_title("The fewer the labels, the more a pretrained start is worth")
    return fig


COLORS = {
    "from scratch": "tab:gray",
    "freeze backbone (through it)": "tab:blue",
    "freeze backbone (feature cache)": "tab:cyan",
    "fine-tune last stage": "tab:orange",
    "fine-tune everything": "tab:green",
}


def build(section, ctx) -> None:
    import tempfile

    import torch
    from torch.utils.data import TensorDataset

    per_class = 5
    sweep_counts = () if ctx.quick else (2, 20)
    pre_epochs, steps = (1, 10) if ctx.quick else (8, 120)
    with torch_threads(1), tempfile.TemporaryDirectory() as cache_dir:
        digits = load_digits(ctx.seed)
        weights, source = pretrain(digits, ctx.out_dir, ctx.seed, pre_epochs)
        xt, yt = select(digits["train"], TARGET_CLASSES)
        held_out = [select(digits[s], TARGET_CLASSES) for s in ("val", "test")]
        test = TensorDataset(torch.cat([t[0] for t in held_out]), torch.cat([t[1] for t in held_out]))

        def run(count: int, settings=None) -> list[dict]:
            x_few, y_few = few_shot(xt, yt, count, ctx.seed)
            return run_settings(weights, TensorDataset(x_few, y_few), test, steps=steps, seed=ctx.seed,
                                cache_dir=Path(cache_dir), settings=settings)

        rows = run(per_class)
        sweep = {per_class: [r for r in rows if r["setting"] != "freeze backbone (through it)"]}
        for count in sweep_counts:
            sweep[count] = run(count, [s for s in SETTINGS if s[0] != "freeze backbone (through it)"])

    n_test = len(test)
    section.text(
        f"Source task: a {MODEL} (width {MODEL_KWARGS['width']}) trained on digits 0-4 at {IMAGE_SIZE}x{IMAGE_SIZE} "
        f"({source['images']} images) for {pre_epochs} epochs ({source['seconds']:.1f} s, {source['val_acc']:.1%} "
        "validation accuracy), saved as "
        f"{weights.name} beside this report. Target task: digits 5-9 with only {per_class} labelled images per "
        f"class. Every setting starts from the same new head, sees the same images in the same order for "
        f"{rows[0]['epochs']} epochs (~{steps} steps of AdamW, lr 3e-3, cosine) and is scored on the same "
        f"{n_test} held-out images. One seed: differences of a few points are noise."
    )
    section.figure(_bar_figure(rows, per_class, n_test), "transfer-settings",
                   "Accuracy and training time per setting. The two frozen settings train the same head and reach "
                   "the same accuracy; with the features cached it costs a fraction of the time.")
    section.table(
        [[r["setting"], r["accuracy"], round(r["seconds"], 2), r["trainable"], f"{r['trainable'] / r['total']:.1%}"]
         for r in rows],
        ["setting", "accuracy", "seconds", "trainable parameters", "share trained"],
        caption=f"Transfer to digits 5-9 ({per_class} labels per class) from a network trained on digits 0-4",
    )
    if len(sweep) > 1:
        section.figure(_sweep_figure(sweep), "labels-sweep",
                       "Held-out accuracy against the number of labelled images per class.")
    by = {r["setting"]: r for r in rows}
    through, cached = by["freeze backbone (through it)"], by["freeze backbone (feature cache)"]
    scratch, tuned = by["from scratch"], by["fine-tune everything"]
    section.text(
        f"Feature cache: freezing the backbone trains {through['trainable']:,} of {through['total']:,} parameters. "
        f"Trained on cached features the head is the same as trained through the frozen backbone (accuracy "
        f"{cached['accuracy']:.1%} vs {through['accuracy']:.1%}; the frozen layers run in eval mode, so their "
        f"features never change) in {cached['seconds']:.2f} s instead of {through['seconds']:.2f} s, computing "
        "the features once included. The cache file is keyed by a hash of the backbone's weights and of the "
        "images, so a changed backbone or data set is never served stale features."
    )
    gain = tuned["accuracy"] - scratch["accuracy"]
    verdict = (f"pretraining helps by {gain:+.1%}" if gain > 0.02 else
               f"pretraining changes little here ({gain:+.1%})" if gain > -0.02 else
               f"pretraining did worse here ({gain:+.1%}), against the lesson")
    if ctx.quick:
        verdict += f" (quick mode: the source network trained {pre_epochs} epoch and the target {steps} steps, too " \
                   "little for a conclusion)"
    frozen = ("lower" if cached["accuracy"] < tuned["accuracy"] - 0.02 else "about the same" if
              abs(cached["accuracy"] - tuned["accuracy"]) <= 0.02 else "higher")
    section.text(
        f"What transfers: with {per_class} labels per class, fine-tuning the pretrained network reaches "
        f"{tuned['accuracy']:.1%} against {scratch['accuracy']:.1%} from scratch: {verdict}. The frozen backbone's "
        f"features, learnt to tell 0-4 apart, give a linear head {cached['accuracy']:.1%}, {frozen} than "
        f"fine-tuning: a source task of 5 classes and {source['images']} images makes specialised features. "
        "Freezing pays when the source is large and varied (ImageNet, in the course) and the labels are few; with "
        "more labels, fine-tune more layers, and with many, training from scratch catches up."
    )

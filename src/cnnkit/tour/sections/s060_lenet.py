"""Tour: LeNet-5 trained on the built-in handwritten digits, to 98%+ test accuracy in well under two minutes.

Shows what the course says a small convolutional network learns: first-layer filters that are stroke and
edge detectors, the feature maps they produce, the training curves, and where the remaining mistakes are.
"""

from __future__ import annotations

import time

import numpy as np

from cnnkit.threads import torch_threads

TITLE = "LeNet-5 on handwritten digits"
ORDER = 60

MODEL = "lenet5_modern"  # ReLU + max pooling (the 1998 original: tanh + average pooling)
AUGMENT = "crop=3,rotate=10"  # shifts of up to 3 pixels and rotations of up to 10 degrees; digits are never mirrored
EPOCHS = 15
QUICK_TRAIN = 300  # training images in quick mode (one epoch)




def _config(epochs: int, seed: int):
    from cnnkit.train import TrainConfig

    return TrainConfig(epochs=epochs, batch_size=32, optimizer="adamw", lr=3e-3, weight_decay=5e-4,
                       schedule="cosine", seed=seed)


def train_lenet(*, seed: int = 0, quick: bool = False, model_name: str = MODEL, epochs: int = EPOCHS):
    """Train LeNet-5 on the digits' train split (augmented), validate on val; returns (result, test set, seconds).

    The splits are cnnkit's standard ones (70/15/15 per class, split seed 0), the same `cnnkit train --data
    digits` uses, so the test accuracy here is that of `cnnkit train --model lenet5_modern --data digits`.
    """
    import torch
    from torch.utils.data import Subset

    from cnnkit.augment import build_transform
    from cnnkit.models import create_model
    from cnnkit.train import fit
    from cnnkit.train.runs import load_split

    kw = {"image_size": 32, "in_chans": 1, "split_seed": 0}
    train = load_split("digits", "train", **kw)
    val = load_split("digits", "val", mean=train.mean, std=train.std, **kw)
    test = load_split("digits", "test", mean=train.mean, std=train.std, **kw)
    train.transform = build_transform(AUGMENT, image_size=32, seed=seed)
    if quick:
        train = Subset(train, np.random.default_rng(seed).permutation(len(train))[:QUICK_TRAIN].tolist())
        epochs = 1
    torch.manual_seed(seed)
    model = create_model(model_name, num_classes=10, in_chans=1)
    start = time.perf_counter()
    result = fit(model, train, val, _config(epochs, seed), progress=False)
    return result, test, time.perf_counter() - start


def filters_figure(model, image: np.ndarray):
    """Row 1: the six 5x5 filters of C1; row 2: what each does to one digit (its ReLU feature map)."""
    import matplotlib.pyplot as plt
    import torch

    w = model.c1.weight.detach()[:, 0].numpy()  # (6, 5, 5)
    with torch.no_grad():
        maps = model.act(model.c1(torch.from_numpy(image)[None])).numpy()[0]  # (6, 28, 28)
    n = w.shape[0]
    fig, axes = plt.subplots(2, n + 1, figsize=(1.6 * (n + 1), 3.6))
    axes[0, 0].axis("off")
    axes[1, 0].imshow(image[0], cmap="gray")
    axes[1, 0].set_title("input", fontsize=9)
    lim = float(np.abs(w).max())
    for k in range(n):
        axes[0, k + 1].imshow(w[k], cmap="RdBu_r", vmin=-lim, vmax=lim)
        axes[0, k + 1].set_title(f"filter {k + 1}", fontsize=9)
        axes[1, k + 1].imshow(maps[k], cmap="magma")
        axes[1, k + 1].set_title(f"map {k + 1}", fontsize=9)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle("First layer (C1): 5x5 filters (red +, blue -) and their ReLU responses to a test digit", fontsize=10)
    fig.tight_layout()
    return fig


def confusion_figure(confusion: list[list[int]], classes: list[str]):
    import matplotlib.pyplot as plt

    cm = np.asarray(confusion)
    fig, ax = plt.subplots(figsize=(5.2, 4.6))
    # colour by share of the true class, so a class with few images is as visible as one with many
    share = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            if cm[i, j]:
                ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=8,
                        color="white" if share[i, j] > 0.5 else ("#b00" if i != j else "black"))
    ax.set_xticks(range(len(classes)), classes)
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted digit")
    ax.set_ylabel("true digit")
    ax.set_title(f"Test confusion matrix ({int(np.trace(cm))}/{int(cm.sum())} right; off-diagonal in red)")
    return fig


def mistakes_figure(model, test, limit: int = 8):
    """The test digits the model gets wrong, with its guess and confidence (None when there are none)."""
    import matplotlib.pyplot as plt
    import torch

    x = torch.stack([test[i][0] for i in range(len(test))])
    y = torch.tensor([test[i][1] for i in range(len(test))])
    with torch.no_grad():
        probs = torch.softmax(model(x), dim=1)
    wrong = torch.nonzero(probs.argmax(1) != y).flatten().tolist()[:limit]
    if not wrong:
        return None
    fig, axes = plt.subplots(1, len(wrong), figsize=(1.5 * len(wrong), 2.0), squeeze=False)
    for ax, i in zip(axes[0], wrong, strict=True):
        raw, label = test.raw(i)
        p = int(probs[i].argmax())
        ax.imshow(raw[:, :, 0], cmap="gray")
        ax.set_title(f"{label} -> {p} ({float(probs[i, p]):.2f})", fontsize=9)
        ax.axis("off")
    fig.suptitle("Test mistakes: true -> predicted (confidence)", fontsize=10)
    fig.tight_layout()
    return fig


def build(section, ctx) -> None:
    from cnnkit.train import evaluate
    from cnnkit.train.logging import plot_curves

    section.text(
        "LeNet-5 (LeCun et al. 1998) is the network the course starts its case studies with: two 5x5 "
        "convolutions with pooling, then fully connected layers, 61,706 parameters on 32x32 inputs. Here it "
        f"learns the 1,797 scikit-learn digits (8x8 scans, upsampled to 32x32) with `cnnkit.train.fit`: {MODEL} "
        f"(ReLU, max pooling), AdamW with a cosine schedule, light augmentation ({AUGMENT}), "
        f"{1 if ctx.quick else EPOCHS} epoch(s)."
    )
    with torch_threads(1):
        result, test, seconds = train_lenet(seed=ctx.seed, quick=ctx.quick)
        model = result.model
        metrics = evaluate(model, test)
    section.code(
        f"cnnkit train --model {MODEL} --data digits --epochs {EPOCHS} --batch-size 32 --lr 0.003 "
        f"--augment {AUGMENT} --out runs/lenet"
    )
    section.table(
        [[MODEL, "quick: 1 epoch, 300 images" if ctx.quick else f"{EPOCHS} epochs", f"{seconds:.1f} s",
          result.best_val_acc, metrics["accuracy"], metrics["top5"], metrics["n"]]],
        ["model", "training", "time", "best val accuracy", "test accuracy", "test top-5", "test images"],
        caption="Result on the held-out test split (never seen in training or model selection)",
    )
    section.figure(plot_curves(result.history, title=f"{MODEL} on digits"), "curves",
                   "Loss and accuracy per epoch. Training accuracy is measured on augmented images while the "
                   "weights change, so it can sit below validation accuracy.")
    image = test[0][0].numpy()
    section.figure(filters_figure(model, image), "filters",
                   "The six learned first-layer filters are small stroke and edge detectors (compare the "
                   "Sobel-like kernels of the edge-detection section); each map lights up where its stroke "
                   "direction occurs in the digit.")
    section.figure(confusion_figure(metrics["confusion_matrix"], test.classes), "confusion",
                   "Rows are the true digits, columns the predictions; everything off the diagonal is a mistake.")
    fig = mistakes_figure(model, test)
    if fig is not None:
        section.figure(fig, "mistakes", "Every test digit the network gets wrong (at most 8 shown).")
    per_class = metrics["per_class_accuracy"]
    worst = min(range(len(per_class)), key=lambda k: per_class[k] if per_class[k] is not None else 2.0)
    if ctx.quick:
        how = "quick mode: one epoch on 300 images, far from what the full run reaches"
    elif metrics["accuracy"] >= 0.98:
        how = "LeNet-5 reaches 98% or better on these digits"
    else:
        how = "below the 98% this recipe usually reaches: a busy machine does not change accuracy, another --seed may"
    section.text(
        f"Test accuracy {metrics['accuracy']:.2%} on {metrics['n']} images in {seconds:.0f} s of training ({how}); "
        f"the hardest digit is {test.classes[worst]} ({per_class[worst]:.0%} right)."
    )

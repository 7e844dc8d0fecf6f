"""Tour: the built-in data sets, their splits, and the sources `load_dataset` reads."""

from __future__ import annotations

import numpy as np

TITLE = "Data sets"
ORDER = 45


def build(section, ctx) -> None:
    from cnnkit.data import list_builtins, load_dataset

    section.text(
        "Every cnnkit command that learns reads its images through one function, load_dataset: a built-in set "
        "(nothing is downloaded), a folder with one sub-folder per class, a CSV of path,label rows, MNIST's IDX "
        "files or CIFAR-10's python batches. Splits are stratified (each class keeps its share in train, val and "
        "test) and depend only on the seed; images come out converted to the channels and size the model expects, "
        "normalised with statistics of the training split."
    )
    rows = []
    for name in list_builtins():
        parts = {s: load_dataset(name, split=s, seed=ctx.seed) for s in ("train", "val", "test")}
        train = parts["train"]
        rows.append([name, len(train.classes), f"{train.image_size}x{train.image_size}",
                     len(train), len(parts["val"]), len(parts["test"]),
                     ", ".join(f"{m:.3f}" for m in train.mean[:1 if len(set(train.mean)) == 1 else 3])])
        section.figure(_samples_figure(parts["train"], per_class=3 if ctx.quick else 6, seed=ctx.seed),
                       f"{name}-samples", f"'{name}': random training images of every class (raw pixels).")
    section.table(rows, ["data set", "classes", "size", "train", "val", "test", "mean (per channel)"],
                  caption="Built-in data sets with the default 70/15/15 split")
    section.code(
        "from cnnkit.data import load_dataset, make_loader\n"
        "train = load_dataset('shapes', split='train', image_size=64, seed=0)\n"
        "val = load_dataset('shapes', split='val', image_size=64, seed=0)   # same seed: disjoint from train\n"
        "loader = make_loader(train, batch_size=64, shuffle=True, seed=0, num_workers=2)\n\n"
        "load_dataset('photos/')              # photos/cat/*.jpg, photos/dog/*.png ...\n"
        "load_dataset('labels.csv')           # rows of path,label; paths relative to the CSV\n"
        "load_dataset('mnist/', in_chans=1)   # train-images-idx3-ubyte, t10k-... (its own test split)\n"
        "load_dataset('cifar-10-batches-py/') # data_batch_1..5, test_batch"
    )


def _samples_figure(ds, *, per_class: int, seed: int):
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(seed)
    targets = np.asarray(ds.targets)
    n_cls = len(ds.classes)
    fig, axes = plt.subplots(per_class, n_cls, figsize=(0.9 * n_cls + 0.3, 0.9 * per_class + 0.3), squeeze=False)
    for c in range(n_cls):
        members = np.flatnonzero(targets == c)
        for r, i in enumerate(rng.choice(members, size=min(per_class, len(members)), replace=False)):
            img = ds.raw(int(i))[0]
            ax = axes[r, c]
            ax.imshow(img[..., 0] if img.shape[-1] == 1 else img, cmap="gray", interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(ds.classes[c], fontsize=9)
    fig.tight_layout(pad=0.2)
    return fig

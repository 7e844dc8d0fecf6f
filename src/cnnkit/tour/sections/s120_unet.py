"""Tour: semantic segmentation with U-Net on the built-in scenes, and what its skip connections add.

Shows what a transposed convolution does to a 2x2 input (each input value times the filter, the copies added
where they overlap), checked against `cnnkit.scratch` and PyTorch; then a small U-Net and the very same network
without skips trained for the same time on the scenes: predictions on held-out scenes, the learning curves,
mIoU side by side and a zoom on an object boundary.
"""

from __future__ import annotations

import time

import numpy as np

from cnnkit.threads import torch_threads

TITLE = "Semantic segmentation: U-Net and its skip connections"
ORDER = 120

SIZE = 64  # scene side in pixels (the CLI default is 96; smaller keeps the section within its time budget)
BASE_WIDTH = 8
FULL = {"train": 400, "val": 80, "test": 100, "epochs": 4}  # ~40 s of one core
QUICK = {"train": 96, "val": 24, "test": 24, "epochs": 1}


def transposed_example():
    """(input 2x2, filter 3x3, stamps (4, 5, 5), full 5x5 sum, cropped 4x4 (pad 1, output_padding 1), scratch's
    and torch's 4x4) for the course's example: stride 2, padding 1."""
    import torch
    import torch.nn.functional as F

    from cnnkit.scratch import conv_transpose_forward

    a = np.array([[1.0, 2.0], [3.0, -1.0]])
    w = np.array([[1.0, 0.0, -1.0], [2.0, 1.0, 0.0], [0.0, 1.0, 1.0]])
    stamps = np.zeros((4, 5, 5))
    for k, (i, j) in enumerate(np.ndindex(2, 2)):
        stamps[k, 2 * i : 2 * i + 3, 2 * j : 2 * j + 3] = a[i, j] * w
    full = stamps.sum(0)
    cropped = full[1:5, 1:5]  # pad 1 cropped top/left; output_padding 1 gives back the bottom/right row
    z, _ = conv_transpose_forward(a[None, :, :, None], w[:, :, None, None], np.zeros((1, 1, 1, 1)),
                                  {"stride": 2, "pad": 1, "output_padding": 1})
    t = F.conv_transpose2d(torch.tensor(a)[None, None], torch.tensor(w)[None, None], stride=2, padding=1,
                           output_padding=1)[0, 0].numpy()
    return a, w, stamps, full, cropped, z[0, :, :, 0], t


def transposed_figure(a, w, stamps, full, cropped):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 8, figsize=(16, 2.6))
    lim = float(np.abs(full).max())
    panels = [(a, "input 2x2"), (w, "filter 3x3")]
    panels += [(stamps[k], f"{a.flat[k]:g} x filter at ({2 * (k // 2)}, {2 * (k % 2)})") for k in range(4)]
    panels += [(full, "sum (5x5)"), (cropped, "crop pad 1 -> 4x4")]
    for ax, (m, title) in zip(axes, panels, strict=True):
        ax.imshow(m, cmap="RdBu_r", vmin=-lim, vmax=lim)
        for (i, j), v in np.ndenumerate(m):
            ax.text(j, i, f"{v + 0.0:g}", ha="center", va="center", fontsize=7)  # + 0.0: no "-0"
        ax.set_title(title, fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle("Transposed convolution, stride 2: every input value stamps the filter scaled by itself, two "
                 "pixels apart; where stamps overlap they add", fontsize=10)
    fig.tight_layout()
    return fig


def train_pair(*, seed: int, quick: bool):
    """Train unet_small and unet_small_noskip (base width BASE_WIDTH) on the same scenes and schedule.

    Returns {name: (TrainResult, test metrics, seconds)} and the test set.
    """
    import torch

    from cnnkit.models import create_model
    from cnnkit.tasks import get_task
    from cnnkit.train import TrainConfig, fit

    p = QUICK if quick else FULL
    task = get_task("segmentation")
    data = task.load_data("scenes", image_size=SIZE, split_seed=seed, augment="none",
                          scene_counts={k: p[k] for k in ("train", "val", "test")})
    config = TrainConfig(epochs=p["epochs"], batch_size=16, optimizer="adamw", lr=3e-3, weight_decay=5e-4,
                         schedule="cosine", seed=seed, eval_batch_size=50)
    out = {}
    for name in ("unet_small", "unet_small_noskip"):
        torch.manual_seed(seed)
        model = create_model(name, num_classes=len(data["train"].classes), base_width=BASE_WIDTH)
        start = time.perf_counter()
        result = fit(model, data["train"], data["val"], config, progress=False, task=task)
        seconds = time.perf_counter() - start
        out[name] = (result, task.evaluate(result.model, data["test"], batch_size=50), seconds)
    return out, data["test"]


def _predict(model, ds, idx):
    import torch

    model.eval()
    with torch.no_grad():
        x = torch.stack([ds[i][0] for i in idx])
        return model(x).argmax(1).numpy()


def boundary_accuracy(model, ds, width: int = 2) -> float:
    """Pixel accuracy on the pixels within `width` of a class boundary of the true map, over the whole set."""
    from scipy import ndimage

    right = total = 0
    for start in range(0, len(ds), 50):
        idx = list(range(start, min(start + 50, len(ds))))
        pred = _predict(model, ds, idx)
        for p, i in zip(pred, idx, strict=True):
            true = ds.raw(i).semantic
            edge = np.zeros(true.shape, bool)
            edge[:, 1:] |= true[:, 1:] != true[:, :-1]
            edge[1:, :] |= true[1:, :] != true[:-1, :]
            band = ndimage.binary_dilation(edge, iterations=width) & (true != 255)
            right += int((p[band] == true[band]).sum())
            total += int(band.sum())
    return right / max(total, 1)


def predictions_figure(model, ds, idx):
    import matplotlib.pyplot as plt

    from cnnkit.segment.task import label_palette, overlay

    pred = _predict(model, ds, idx)
    pal = label_palette(len(ds.classes))
    fig, axes = plt.subplots(len(idx), 4, figsize=(8, 2.1 * len(idx)), squeeze=False)
    for r, i in enumerate(idx):
        raw = ds.raw(i)
        true = raw.semantic
        for c, (img, title) in enumerate([(raw.image, "input"), (pal[true], "true mask"), (pal[pred[r]], "predicted"),
                                          (overlay(raw.image, pred[r]), "overlay")]):
            axes[r, c].imshow(img, interpolation="nearest")
            axes[r, c].set_title(title if r == 0 else "", fontsize=9)
            axes[r, c].axis("off")
    fig.suptitle("Held-out scenes: " + ", ".join(f"{n}" for n in ds.classes[1:]) + " (colours as the label PNG)",
                 fontsize=9)
    fig.tight_layout()
    return fig


def boundary_figure(models: dict, ds, i: int):
    """A zoom on one object's boundary: true mask, U-Net, U-Net without skips."""
    import matplotlib.pyplot as plt

    from cnnkit.segment.task import label_palette

    raw = ds.raw(i)
    true = raw.semantic
    ys, xs = np.nonzero(true > 0)
    cy, cx = int(ys.mean()), int(xs.mean())
    r = max(8, int(max(ys.max() - ys.min(), xs.max() - xs.min()) * 0.7))
    y0, x0 = max(0, cy - r), max(0, cx - r)
    crop = (slice(y0, cy + r), slice(x0, cx + r))
    pal = label_palette(len(ds.classes))
    panels = [(raw.image[crop], "input"), (pal[true][crop], "true")]
    for name, model in models.items():
        pred = _predict(model, ds, [i])[0]
        wrong = (pred != true) & (true != 255)
        shown = pal[pred].copy()
        shown[wrong] = (255, 0, 255)
        panels.append((shown[crop], f"{name}\n({int(wrong[crop].sum())} wrong px, magenta)"))
    fig, axes = plt.subplots(1, len(panels), figsize=(2.6 * len(panels), 2.9))
    for ax, (img, title) in zip(axes, panels, strict=True):
        ax.imshow(img, interpolation="nearest")
        ax.set_title(title, fontsize=8)
        ax.axis("off")
    fig.suptitle("Zoom on one object's boundary, with and without skip connections", fontsize=9)
    fig.tight_layout()
    return fig


def build(section, ctx) -> None:
    from cnnkit.train.logging import plot_curves

    section.text(
        "Semantic segmentation classifies every pixel: the network shrinks the image into features and grows them "
        "back to an h x w x classes map of scores. The growing is done by transposed convolutions. On a 2x2 input "
        "with a 3x3 filter, stride 2 and padding 1 (the course's example), each input value multiplies the whole "
        "filter, the four copies are placed two pixels apart and added where they overlap, and the padding is "
        "cropped from the result:"
    )
    a, w, stamps, full, cropped, scratch, torch_out = transposed_example()
    section.figure(transposed_figure(a, w, stamps, full, cropped), "transposed",
                   "The four scaled stamps, their sum and the cropped 4x4 output.")
    agree = bool(np.allclose(cropped, scratch) and np.allclose(cropped, torch_out))
    section.text(
        f"The hand-made sum {'equals' if agree else 'DIFFERS from'} both `cnnkit.scratch.conv_transpose_forward` "
        f"and PyTorch's `conv_transpose2d` (largest difference "
        f"{max(np.abs(cropped - scratch).max(), np.abs(cropped - torch_out).max()):.1e})."
    )

    p = QUICK if ctx.quick else FULL
    section.text(
        f"U-Net adds skip connections: each decoder level concatenates the encoder's feature map of the same size. "
        f"To see what they add, the same small U-Net (unet_small with base width {BASE_WIDTH}: BatchNorm, same "
        f"padding, depth 4) is trained with and without its skips, same data, seed and schedule: "
        f"{p['train']} built-in scenes of {SIZE}x{SIZE} pixels, {p['epochs']} epoch(s) of AdamW with a cosine "
        f"schedule and CE + Dice loss, then scored on {p['test']} held-out scenes."
    )
    with torch_threads(1):
        runs, test = train_pair(seed=ctx.seed, quick=ctx.quick)
    rows, edge_acc = [], {}
    for name, (result, metrics, seconds) in runs.items():
        n_params = sum(q.numel() for q in result.model.parameters())
        edge_acc[name] = boundary_accuracy(result.model, test)
        rows.append([name, f"{n_params:,}", f"{seconds:.1f} s", metrics["miou"], metrics["pixel_accuracy"],
                     edge_acc[name], metrics["mdice"]])
    section.table(rows, ["model", "parameters", "training", "test mIoU", "pixel accuracy",
                         "accuracy within 2 px of a boundary", "mean Dice"],
                  caption="Held-out scenes (never trained on)")
    skip, noskip = runs["unet_small"], runs["unet_small_noskip"]
    section.figure(plot_curves(skip[0].history, title="unet_small on scenes", metric="miou", metric_label="mIoU",
                               loss_label="loss (CE + Dice)"), "curves", "Loss and validation mIoU per epoch.")
    idx = list(range(4 if not ctx.quick else 2))
    section.figure(predictions_figure(skip[0].model, test, idx), "predictions",
                   "Input, true mask, U-Net's prediction and the overlay that `cnnkit predict` writes.")
    section.figure(boundary_figure({"U-Net": skip[0].model, "no skips": noskip[0].model}, test, 0), "boundary",
                   "The same object boundary, with and without skips; wrong pixels in magenta.")
    d = skip[1]["miou"] - noskip[1]["miou"]
    e = edge_acc["unet_small"] - edge_acc["unet_small_noskip"]
    if ctx.quick:
        verdict = ("quick mode trains one short epoch on a few scenes, so both networks are far from what the full "
                   "run reaches and the difference says little")
    elif d > 0.02:
        verdict = f"the skips are worth {d:.3f} mIoU here"
    elif d < -0.02:
        verdict = (f"here the skip-free network scored {-d:.3f} mIoU higher, against the lesson; a longer run "
                   "or another seed may change it")
    else:
        verdict = "the two networks score about the same in this short run"
    if not ctx.quick:
        verdict += (f"; near boundaries the U-Net is {'more' if e > 0 else 'less'} accurate by {abs(e):.3f} "
                    f"({edge_acc['unet_small']:.3f} vs {edge_acc['unet_small_noskip']:.3f})")
        if skip[1]["miou"] < 0.5:
            verdict += (f". Both runs are short: with pixel accuracy {skip[1]['pixel_accuracy']:.2f} they have found "
                        "where the objects are, but mostly not yet which shape each one is, which is what mIoU "
                        "counts; that needs many more steps than this section can afford (the README's full runs "
                        "with `cnnkit train`'s defaults: test mIoU 0.939 with the skips, trained in 8 minutes on "
                        "two cores, and 0.760 without)")
    section.text(f"Test mIoU: U-Net {skip[1]['miou']:.3f}, without skips {noskip[1]['miou']:.3f}; {verdict}.")
    section.code("cnnkit train --model unet_small --data scenes --out runs/unet\n"
                 "cnnkit train --model unet_small_noskip --data scenes --out runs/unet_noskip\n"
                 "cnnkit evaluate runs/unet/best.safetensors --data scenes --json\n"
                 "cnnkit predict runs/unet/best.safetensors scene.png --out pred/  # pred/scene.png, scene_labels.png")

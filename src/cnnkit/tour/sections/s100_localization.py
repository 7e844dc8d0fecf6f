"""Tour: the road to object detection. Classification with localisation, landmarks, then sliding windows, naive
and convolutional.

Small networks trained for a few seconds on built-in scenes (64 x 64 here, so the section stays short); the
targets of issue 10 are measured with the full commands printed in the section.
"""

from __future__ import annotations

import time

import numpy as np

from cnnkit.threads import torch_threads

TITLE = "Localisation, landmarks and sliding windows"
ORDER = 100

SIZE = 64  # scene side in this section (the commands below train at 128)
N_TRAIN, N_VAL = 800, 100
EPOCHS = 8
QUICK = {"n_train": 160, "epochs": 1}


def _config(epochs: int, seed: int):
    from cnnkit.train import TrainConfig

    return TrainConfig(epochs=epochs, batch_size=32, lr=2e-3, weight_decay=5e-4, warmup_epochs=0.5, seed=seed,
                       grad_clip=10.0)


def train_task(model_name: str, view: str, *, seed: int, quick: bool):
    """Train a localisation or landmark model on one-object scenes; returns (model, val data, metrics, seconds)."""
    import torch

    from cnnkit.data.scene_dataset import load_scenes
    from cnnkit.models import create_model
    from cnnkit.tasks import task_for_model
    from cnnkit.train import fit

    n_train, epochs = (QUICK["n_train"], QUICK["epochs"]) if quick else (N_TRAIN, EPOCHS)
    torch.manual_seed(seed)
    model = create_model(model_name, image_size=SIZE)
    task = task_for_model(model)
    parts = load_scenes(train=n_train, val=N_VAL, test=0, size=SIZE, view=view, seed=seed, progress=False,
                        masks=False)
    if view == "landmarks":  # the task's default augmentation: mirror with left/right swap, zoom, shift, colour
        from cnnkit.augment import Compose, build_transform
        from cnnkit.detect.landmarks import HorizontalFlipLandmarks

        rest = build_transform("scale=0.1,translate=0.05,colour=0.1", image_size=SIZE, seed=seed)
        parts["train"].transform = Compose([HorizontalFlipLandmarks(parts["train"].flip_pairs), rest], seed=seed)
    else:
        from cnnkit.augment import build_transform

        parts["train"].transform = build_transform("flip,colour=0.1", image_size=SIZE, seed=seed)
    start = time.perf_counter()
    fit(model, parts["train"], None, _config(epochs, seed), progress=False, task=task)
    seconds = time.perf_counter() - start
    metrics = task.evaluate(model, parts["val"], batch_size=100)
    return model, parts["val"], metrics, seconds


def prediction_grid(model, data, task_name: str, n: int = 6):
    """Predictions (red) and truth (green) on n held-out scenes."""
    import matplotlib.pyplot as plt
    import torch

    from cnnkit.detect.localization import decode_localization

    fig, axes = plt.subplots(1, n, figsize=(2.1 * n, 2.4))
    model.eval()
    for ax, i in zip(axes, range(n), strict=True):
        image, t = data[i]
        with torch.no_grad():
            out = model(image[None]).float()
        ax.imshow(image.permute(1, 2, 0).numpy())
        if task_name == "localization":
            _, box, label, _ = decode_localization(out, (SIZE, SIZE))
            for b, colour in ((t["boxes"][0], "lime"), (box[0], "red")):
                x1, y1, x2, y2 = b.tolist()
                ax.add_patch(plt.Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, color=colour, lw=1.5))
            ax.set_title(data.classes[int(label[0])], fontsize=9)
        else:
            pts = out[0].numpy() * SIZE
            true = t["keypoints"][0].numpy()
            ax.scatter(true[:, 0], true[:, 1], s=28, c="lime", marker="o")
            ax.scatter(pts[:, 0], pts[:, 1], s=28, c=["red", "orange", "magenta", "cyan"][: len(pts)], marker="x")
            ax.text(pts[0, 0], pts[0, 1] - 2, "0", color="red", fontsize=8)
        ax.axis("off")
    fig.tight_layout()
    return fig


# -- sliding windows -----------------------------------------------------------------------------------------

WINDOW, SCENE = 32, 128


def _window_scenes(seed: int):
    """Scenes whose objects fit a 32x32 window (radius 8-12% of 128 pixels)."""
    from cnnkit.data.scenes import SceneConfig

    return SceneConfig(size=SCENE, seed=seed, scale=(0.08, 0.12))


def window_crops(n_scenes: int, seed: int):
    """32x32 crops of 128x128 scenes: objects centred in the window (label = class + 1), and background crops
    (label 0), the training set of the window classifier."""
    import torch

    from cnnkit.data.scene_dataset import load_scenes

    ds = load_scenes(train=n_scenes, val=0, test=0, config=_window_scenes(seed), progress=False, masks=False)["train"]
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for i in range(len(ds)):
        image, t = ds[i]
        boxes = t["boxes"]
        for b, lab in zip(boxes.tolist(), t["labels"].tolist(), strict=True):
            cx, cy = (b[0] + b[2]) / 2 + rng.uniform(-3, 3), (b[1] + b[3]) / 2 + rng.uniform(-3, 3)
            x0 = int(np.clip(round(cx - WINDOW / 2), 0, SCENE - WINDOW))
            y0 = int(np.clip(round(cy - WINDOW / 2), 0, SCENE - WINDOW))
            if max(b[2] - b[0], b[3] - b[1]) <= WINDOW:
                xs.append(image[:, y0:y0 + WINDOW, x0:x0 + WINDOW])
                ys.append(lab + 1)
        for _ in range(3):  # background: windows whose centre is far from every object centre
            x0, y0 = rng.integers(0, SCENE - WINDOW + 1, 2)
            c = torch.tensor([x0 + WINDOW / 2, y0 + WINDOW / 2])
            centres = (boxes[:, :2] + boxes[:, 2:]) / 2
            if len(boxes) == 0 or (centres - c).abs().max(1).values.min() > WINDOW / 2:
                xs.append(image[:, y0:y0 + WINDOW, x0:x0 + WINDOW])
                ys.append(0)
    return torch.stack(xs), torch.tensor(ys), ds.classes


def train_window_classifier(seed: int, quick: bool):
    import torch
    from torch.utils.data import TensorDataset

    from cnnkit.detect.sliding_window import window_net32
    from cnnkit.train import fit

    x, y, classes = window_crops(60 if quick else 400, seed)
    torch.manual_seed(seed)
    net = window_net32(num_classes=len(classes) + 1)
    fit(net, TensorDataset(x, y), None, _config(1 if quick else 6, seed), progress=False)
    hx, hy, _ = window_crops(20 if quick else 80, seed + 1000)  # held-out crops of other scenes
    with torch.no_grad():
        accuracy = float((net.eval()(hx).argmax(1) == hy).float().mean())
    return net, classes, len(x), accuracy


def _best_times(fns, rounds: int = 5) -> list[float]:
    """Best time of each function over `rounds` alternating rounds (a busy machine slows them alike)."""
    best = [float("inf")] * len(fns)
    for _ in range(rounds):
        for k, fn in enumerate(fns):
            t = time.perf_counter()
            fn()
            best[k] = min(best[k], time.perf_counter() - t)
    return best


def build(section, ctx) -> None:
    import torch

    from cnnkit.detect.sliding_window import (
        convolutional_sliding_window,
        detect_windows,
        naive_sliding_window,
        network_stride,
        to_convolutional,
    )
    from cnnkit.detect.task import draw_detections

    section.text(
        "The curriculum reaches object detection in steps, each fixing the weakness of the one before. First, "
        "classification with localisation: a network outputs y = (p_c, b_x, b_y, b_h, b_w, c_1..c_n) for the one "
        "object in the image (midpoint and size as fractions of the image); its loss is logistic on p_c, squared "
        "error on the box and softmax on the class, the last two only where an object is present. Here loc_tiny "
        f"(darknet_tiny cut at stride 16 with a head that keeps the spatial layout) learns one-object scenes of "
        f"{SIZE}x{SIZE} pixels for {QUICK['epochs'] if ctx.quick else EPOCHS} epoch(s)."
    )
    with torch_threads(1):
        loc, loc_val, loc_m, loc_s = train_task("loc_tiny", "localisation", seed=ctx.seed, quick=ctx.quick)
    section.figure(prediction_grid(loc, loc_val, "localization"), "localisation",
                   "Held-out scenes: the true box (green) and the predicted one (red), with the predicted class.")
    section.text(
        "Second, landmarks: the same backbone regresses K = 4 points (a shape's corners in its upright frame). "
        "Mirroring an image for augmentation must also swap the identities of left/right pairs (the mirrored "
        "top-left corner is the new top-right one), or the network is taught contradictions; "
        "HorizontalFlipLandmarks does both with the pairs the data declares."
    )
    with torch_threads(1):
        lm, lm_val, lm_m, lm_s = train_task("landmarks_tiny", "landmarks", seed=ctx.seed, quick=ctx.quick)
    section.figure(prediction_grid(lm, lm_val, "landmarks"), "landmarks",
                   "True landmarks (green dots) and predictions (crosses; red = landmark 0, top-left).")
    section.table(
        [["localisation (loc_tiny)", f"{loc_s:.1f} s", f"mean IoU {loc_m['mean_iou']:.3f}",
          f"class accuracy {loc_m['accuracy']:.3f}"],
         ["landmarks (landmarks_tiny)", f"{lm_s:.1f} s", f"mean error {100 * lm_m['mean_error']:.2f}% of the side",
          ""]],
        ["task", "training", "held-out result", ""],
        caption=f"{N_VAL} held-out scenes of {SIZE}x{SIZE}; short training for the tour",
    )
    section.code("cnnkit train --model loc_tiny --data scenes --out runs/loc          # localisation, 128x128\n"
                 "cnnkit train --model landmarks_tiny --data scenes --out runs/lm     # landmarks")
    verdict_loc = "meets" if loc_m["mean_iou"] >= 0.8 else "is still below"
    verdict_lm = "meets" if lm_m["mean_error"] <= 0.03 else "is still above"
    section.text(
        f"After these few seconds the localisation's mean IoU ({loc_m['mean_iou']:.2f}) {verdict_loc} the 0.8 the "
        f"issue asks of the full run, and the landmark error ({100 * lm_m['mean_error']:.1f}% of the side) "
        f"{verdict_lm} its 3%; the README gives the numbers of the full commands."
    )

    # -- sliding windows ------------------------------------------------------------------------------------
    section.text(
        "One object per image is a strong assumption. The sliding-window detector drops it: train a classifier "
        f"on {WINDOW}x{WINDOW} crops (an object centred in the window, or background), slide a window across the "
        "image at a stride and classify every crop, keep the windows classified as objects, remove duplicates "
        "with NMS. The naive way recomputes the convolutions of every pixel for each of the many windows that "
        "contain it. OverFeat's convolutional way turns the fully connected layers into convolutions (the first "
        "FC, on a 4x4x32 volume here, becomes a 4x4 convolution; the next ones 1x1 convolutions) and runs the "
        "network once on the whole image: each position of the output map is one window."
    )
    with torch_threads(1):
        net, classes, n_crops, crop_acc = train_window_classifier(ctx.seed, ctx.quick)
        conv = to_convolutional(net).eval()
        stride = network_stride(net.features)
        from cnnkit.data.scenes import make_scene

        scene = make_scene(_window_scenes(ctx.seed + 7), 3)
        image = torch.from_numpy(scene.image).permute(2, 0, 1).float() / 255
        naive, boxes = naive_sliding_window(net, image, window=WINDOW, stride=stride)
        fast, _ = convolutional_sliding_window(conv, image, window=WINDOW, stride=stride)
        t_naive, t_fast = _best_times([lambda: naive_sliding_window(net, image, window=WINDOW, stride=stride),
                                       lambda: convolutional_sliding_window(conv, image, window=WINDOW, stride=stride)],
                                      rounds=2 if ctx.quick else 4)
    diff = float((naive - fast).abs().max())
    det = detect_windows(fast, boxes, score_threshold=0.5, iou_threshold=0.2)
    names = ["background", *classes]
    dets = [{"box": b.tolist(), "score": float(s), "class": names[int(c)], "class_id": int(c) - 1}
            for b, s, c in zip(det["boxes"], det["scores"], det["labels"], strict=True)]
    section.image(draw_detections(scene.image, dets), "windows",
                  f"Windows kept after a 0.5 threshold and NMS on one {SCENE}x{SCENE} scene "
                  f"({naive.shape[0] * naive.shape[1]} windows of {WINDOW}x{WINDOW} at stride {stride}).")
    ratio = t_naive / t_fast
    section.table([["naive (crop, classify, batched)", f"{1000 * t_naive:.1f} ms"],
                   ["convolutional (one pass)", f"{1000 * t_fast:.1f} ms"],
                   ["speed-up", f"{ratio:.1f}x"], ["largest difference of the logits", f"{diff:.2g}"],
                   ["window classifier accuracy on held-out crops", f"{crop_acc:.3f}"]],
                  ["", "this run"], caption=f"Window classifier trained on {n_crops} crops; one thread")
    section.text(
        f"Both give the same numbers for every window (largest difference {diff:.1g}, float rounding), and the "
        f"convolutional pass is {ratio:.0f}x faster here (benchmarks/bench_sliding_window.py measures it apart; the "
        f"issue's target is 20x). The windows are only as good as the classifier ({crop_acc:.0%} right on held-out "
        "crops after its few seconds of training). What neither fixes: the boxes can only be the window's square "
        "at the stride's positions, so they rarely fit the object. YOLO, next, predicts boxes of any shape from "
        "every grid cell."
    )

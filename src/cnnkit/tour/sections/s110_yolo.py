"""Tour: YOLO (v2-style) on the built-in scenes. The grid and its anchors, anchors by k-means, raw boxes before and
after non-maximum suppression, and the detections of a briefly trained yolo_tiny with COCO mAP and a
precision-recall curve.
"""

from __future__ import annotations

import time

import numpy as np

from cnnkit.threads import torch_threads

TITLE = "YOLO: one pass, a grid of cells, anchor boxes"
ORDER = 110

MODEL = "yolo_tiny"
N_TRAIN, N_TEST = 800, 200
EPOCHS = 5
QUICK = {"n_train": 120, "n_test": 40, "epochs": 1}


def _scenes(n_train: int, n_test: int, seed: int):
    from cnnkit.augment import build_transform
    from cnnkit.data.scene_dataset import load_scenes
    from cnnkit.detect.task import DEFAULT_DETECTION_AUGMENT

    aug = build_transform(DEFAULT_DETECTION_AUGMENT, image_size=128, seed=seed)
    return load_scenes(train=n_train, val=0, test=n_test, size=128, seed=seed, transform=aug, progress=False,
                       masks=False)


def kmeans_figure(wh: np.ndarray, anchors: np.ndarray, curve: list[tuple[int, float]]):
    import matplotlib.pyplot as plt

    from cnnkit.detect.yolo import anchor_iou

    assign = anchor_iou(wh, anchors).argmax(1)
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.8))
    a.scatter(wh[:, 0], wh[:, 1], c=assign, cmap="tab10", s=4, alpha=0.5)
    a.scatter(anchors[:, 0], anchors[:, 1], c="black", marker="x", s=80, label="anchors")
    a.set_xlabel("box width (pixels)")
    a.set_ylabel("box height (pixels)")
    a.set_title("training boxes coloured by their best anchor")
    a.legend()
    ks, ious = zip(*curve, strict=True)
    b.plot(ks, ious, "o-")
    b.set_xlabel("number of anchors k")
    b.set_ylabel("average IoU of a box with its best anchor")
    b.set_title("k-means with distance 1 - IoU")
    b.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def grid_figure(image: np.ndarray, boxes: np.ndarray, anchors: np.ndarray, stride: int):
    """The S x S grid, each object's midpoint and responsible cell, and the anchors drawn in that cell (the best
    shape in red)."""
    import matplotlib.pyplot as plt

    from cnnkit.detect.yolo import anchor_iou

    h, w = image.shape[:2]
    fig, ax = plt.subplots(figsize=(4.6, 4.6))
    ax.imshow(image)
    for k in range(0, w + 1, stride):
        ax.axvline(k - 0.5, color="white", lw=0.6, alpha=0.7)
    for k in range(0, h + 1, stride):
        ax.axhline(k - 0.5, color="white", lw=0.6, alpha=0.7)
    wh = np.stack([boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]], 1)
    best = anchor_iou(wh, anchors).argmax(1) if len(boxes) else []
    for b, a_best in zip(boxes, best, strict=True):
        cx, cy = (b[0] + b[2]) / 2, (b[1] + b[3]) / 2
        col, row = int(cx // stride), int(cy // stride)
        ax.add_patch(plt.Rectangle((col * stride - 0.5, row * stride - 0.5), stride, stride, color="yellow",
                                   alpha=0.35))
        ax.plot(cx, cy, "o", color="yellow", ms=5)
        ax.add_patch(plt.Rectangle((b[0], b[1]), b[2] - b[0], b[3] - b[1], fill=False, color="lime", lw=1.5))
        for k, (aw, ah) in enumerate(anchors):
            ax.add_patch(plt.Rectangle((cx - aw / 2, cy - ah / 2), aw, ah, fill=False, lw=1.2 if k == a_best else 0.6,
                                       color="red" if k == a_best else "cyan", ls="-" if k == a_best else "--"))
    ax.set_title(f"{h // stride}x{w // stride} grid (stride {stride}), anchors at each object", fontsize=9)
    ax.axis("off")
    fig.tight_layout()
    return fig


def pr_figure(result, classes: list[str]):
    """Precision against recall per class at IoU 0.5 (`cnnkit.metrics.plots`)."""
    from cnnkit.metrics.plots import plot_pr_curves

    return plot_pr_curves(result, dict(enumerate(classes)), iou_threshold=0.5)


def build(section, ctx) -> None:
    import torch

    from cnnkit.detect.task import DetectionTask, detection_map, draw_detections, training_box_sizes
    from cnnkit.detect.yolo import kmeans_anchors, postprocess
    from cnnkit.models import create_model
    from cnnkit.train import TrainConfig, fit

    n_train, n_test, epochs = ((QUICK["n_train"], QUICK["n_test"], QUICK["epochs"]) if ctx.quick
                               else (N_TRAIN, N_TEST, EPOCHS))
    parts = _scenes(n_train, n_test, ctx.seed)
    train, test = parts["train"], parts["test"]
    classes = list(train.classes)

    # -- anchors ------------------------------------------------------------------------------------------
    wh = training_box_sizes(train)
    curve = [(k, kmeans_anchors(wh, k, seed=ctx.seed)[1]) for k in range(1, 7)]
    anchors, mean_iou = kmeans_anchors(wh, 5, seed=ctx.seed)
    section.text(
        "YOLO looks once: a convolutional network turns the image into an S x S grid of cells, and every cell "
        "predicts, for each of its B anchor boxes, y = (p_c, b_x, b_y, b_h, b_w, c_1..c_n): the output is "
        "(S, S, B, 5 + C). b_x, b_y are sigmoid offsets inside the cell, so a cell only answers for objects whose "
        "midpoint it holds; b_w, b_h are the anchor's size times exp of the output, so each anchor specialises in "
        "one shape. An object is assigned to the cell holding its midpoint and to the anchor whose shape has the "
        "highest IoU with its box; YOLOv2 chooses the anchor shapes by k-means on the training boxes with 1 - IoU "
        "as the distance."
    )
    section.figure(kmeans_figure(wh, anchors, curve), "kmeans",
                   f"{len(wh)} training boxes. With k = 5 the anchors reach an average IoU of {mean_iou:.3f} with the "
                   "boxes; the curve shows what each extra anchor buys.")
    section.table([[k, round(v, 3)] for k, v in curve], ["k", "average IoU"], caption="k-means anchors")
    section.code("anchors (w x h pixels): " + ", ".join(f"{a:.0f}x{b:.0f}" for a, b in anchors))
    scene, target = test.raw(0), test[0][1]
    section.figure(grid_figure(scene.image, target["boxes"].numpy(), anchors, 16), "grid",
                   "The cell responsible for each object (yellow) holds its midpoint; the anchors are drawn at the "
                   "object (dashed cyan), the one with the best shape IoU in red: it learns this object.")

    # -- a short training ---------------------------------------------------------------------------------
    torch.manual_seed(ctx.seed)
    model = create_model(MODEL, num_classes=len(classes), anchors=anchors.tolist())
    task = DetectionTask.for_model(model)
    cfg = dict(task.train_defaults, epochs=epochs)
    start = time.perf_counter()
    with torch_threads(2):
        fit(model, train, None, TrainConfig(**cfg, seed=ctx.seed), progress=False, task=task)
    seconds = time.perf_counter() - start
    model.eval()
    with torch_threads(2), torch.no_grad():
        x = torch.stack([test[i][0] for i in range(len(test))])
        raw = torch.cat([model(x[i:i + 100]) for i in range(0, len(x), 100)])
        boxes, scores = model.decode(raw)
    preds = postprocess(boxes, scores, score_threshold=0.001, iou_threshold=0.5, image_size=(128, 128))
    gts = [test[i][1] for i in range(len(test))]
    m = detection_map(preds, gts, classes, with_result=True)

    # -- raw boxes before and after NMS --------------------------------------------------------------------
    thr = 0.2
    before = postprocess(boxes[:1], scores[:1], score_threshold=thr, iou_threshold=1.0, max_detections=1000,
                         image_size=(128, 128))[0]
    after = postprocess(boxes[:1], scores[:1], score_threshold=thr, iou_threshold=0.45, image_size=(128, 128))[0]

    def dets(d):
        return [{"box": b.tolist(), "score": float(s), "class": classes[int(c)], "class_id": int(c)}
                for b, s, c in zip(d["boxes"], d["scores"], d["labels"], strict=True)]

    section.text(
        f"{MODEL} (darknet_tiny cut at stride 16 with YOLOv2's passthrough: an 8 x 8 grid on 128 x 128 scenes, "
        f"B = 5) trained from scratch for {epochs} epoch(s) on {n_train} scenes, {seconds:.0f} s here, with the "
        "YOLOv2 loss. Decoding gives every anchor a box and a score p_c x P(class); a threshold keeps the "
        "confident ones, and per-class non-maximum suppression keeps the best of each cluster of overlapping boxes."
    )
    section.image(draw_detections(scene.image, dets(before)), "before-nms",
                  f"Before NMS: every (anchor, class) with score >= {thr} ({len(before['boxes'])} boxes).")
    section.image(draw_detections(scene.image, dets(after)), "after-nms",
                  f"After per-class NMS at IoU 0.45: {len(after['boxes'])} boxes for {len(target['boxes'])} objects.")

    # -- detections and mAP -------------------------------------------------------------------------------
    pics = [draw_detections(test.raw(i).image, dets(postprocess(boxes[i:i + 1], scores[i:i + 1],
                                                               score_threshold=0.3, image_size=(128, 128))[0]))
            for i in range(1, 5)]
    section.image(np.concatenate(pics, axis=1), "detections", "Detections (score >= 0.3) on four held-out scenes.")
    section.figure(pr_figure(m["result"], classes), "pr", "Precision against recall per class at IoU 0.5.")
    section.code(m["summary"])
    section.table([[f"{m['map']:.3f}", f"{m['map50']:.3f}", f"{m['map75']:.3f}", f"{seconds:.0f} s", n_test]],
                  ["mAP@[.5:.95]", "mAP@.5", "mAP@.75", "training", "held-out scenes"],
                  caption="COCO mAP of this short run (cnnkit.metrics, pycocotools' definition)")
    good = m["map50"] >= 0.9 and m["map"] >= 0.6
    section.text(
        f"After {seconds:.0f} s of training the detector reaches mAP@.5 {m['map50']:.2f} and mAP@[.5:.95] "
        f"{m['map']:.2f} on held-out scenes: "
        + ("already at the issue's targets (0.90 and 0.60)." if good else
           "short of the issue's targets (0.90 and 0.60), which the full default run below reaches (its numbers are "
           "in the README; benchmarks/bench_yolo_train.py measures them).")
        + " The gap between mAP@.5 and mAP@[.5:.95] is the localisation error: a box that overlaps its object "
        "by 0.6 counts at 0.5 but not at 0.75 and above."
    )
    section.code("cnnkit train --model yolo_tiny --data scenes --out runs/yolo      # k-means anchors, 30 epochs\n"
                 "cnnkit evaluate runs/yolo/best.safetensors --data scenes           # the 12 COCO numbers\n"
                 "cnnkit predict runs/yolo/best.safetensors scene.png --out preds    # picture, JSON and CSV")

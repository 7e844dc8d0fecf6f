"""Tour: the built-in scenes (objects with boxes, masks and landmarks) and the annotation formats they are written in.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

TITLE = "Scenes: boxes, masks, landmarks and the annotation formats"
ORDER = 90


def build(section, ctx) -> None:
    from cnnkit.data.scenes import ALL_CLASSES, FLIP_PAIRS, LANDMARK_NAMES, SceneConfig, make_scene, one_object_config

    n = 100 if ctx.quick else 1000
    config = SceneConfig(size=128, seed=ctx.seed)
    start = time.perf_counter()
    scenes = [make_scene(config, i) for i in range(n)]
    seconds = time.perf_counter() - start

    section.text(
        "Detection, segmentation and landmark models need images whose objects are labelled, and cnnkit makes them "
        "itself, nothing downloaded: the built-in 'scenes'. Each scene is a textured or graded background with "
        "objects pasted at random sizes, places, rotations and colours; a later object may hide part of an earlier "
        "one. Every object comes with its class, its box (the tight box of its visible pixels, as COCO defines it), "
        "its instance mask, the scene's semantic mask (a class per pixel) and four landmarks. The same seed and "
        "index always give the same scene, and the train, val and test splits are disjoint index ranges, so a "
        "held-out scene was never trained on."
    )
    counts = np.bincount([len(s.labels) for s in scenes], minlength=config.max_objects + 1)
    labels = np.concatenate([s.labels for s in scenes])
    per_class = np.bincount(labels, minlength=config.num_classes)
    boxes = np.concatenate([s.boxes for s in scenes])
    sides = np.sqrt((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))
    vis = np.concatenate([s.visibility for s in scenes])
    hidden = float((vis == 1).any(axis=1).mean())
    section.text(
        f"{n} scenes of 128 x 128 took {seconds:.2f} s to make ({1e3 * seconds / n:.1f} ms each). They hold "
        f"{len(labels)} objects ({len(labels) / n:.2f} per scene; "
        + ", ".join(f"{k} object(s): {c}" for k, c in enumerate(counts) if c)
        + f"). Box sides (square root of the area) range from {sides.min():.0f} to {sides.max():.0f} pixels "
        f"(median {np.median(sides):.0f}); {100 * hidden:.0f}% of the objects have at least one landmark hidden "
        "by a later object."
    )
    section.table([[c, int(k)] for c, k in zip(config.classes, per_class, strict=True)], ["class", "objects"],
                  caption=f"Objects per class in {n} scenes")

    from cnnkit.data.scene_dataset import load_scenes
    from cnnkit.viz.draw import annotation_grid

    det = load_scenes(train=8, val=0, test=0, seed=ctx.seed, progress=False)["train"]
    section.figure(annotation_grid(det, n=8), "detection",
                   "Scenes with their annotations: boxes with class names, instance masks as colour overlays, "
                   "landmarks as dots.")
    _semantic_and_one_object(section, ctx)
    digits = load_scenes(train=8, val=0, test=0, seed=ctx.seed, classes=ALL_CLASSES, progress=False)["train"]
    section.figure(annotation_grid(digits, n=8), "digits",
                   "With classes=ALL_CLASSES: the five shapes and scikit-learn's real handwritten digits 0-9, "
                   "upsampled smoothly. Train, val and test scenes draw their digits from disjoint thirds of "
                   "the 1,797.")

    # landmarks and mirroring, checked on the scenes themselves
    upright = np.concatenate([s.landmarks for s in scenes])
    left_first = float((upright[:, 0, 0] < upright[:, 1, 0]).mean())
    mirrored = upright.copy()
    mirrored[..., 0] = 128 - mirrored[..., 0]
    swapped = mirrored.copy()
    for a, b in FLIP_PAIRS:
        swapped[:, [a, b]] = mirrored[:, [b, a]]
    after_flip = float((mirrored[:, 0, 0] < mirrored[:, 1, 0]).mean())
    after_swap = float((swapped[:, 0, 0] < swapped[:, 1, 0]).mean())
    section.text(
        f"The landmarks are {', '.join(LANDMARK_NAMES)} of each object's upright frame: a square's corners, a "
        "circle's points at 45 degrees, the star's four side and lower tips, the cross's outer arm corners, the "
        "(downward) triangle's two upper vertices and its lower one (twice), a digit's ink-box corners. A shape "
        "turns at most 0.8 of half its symmetry angle, so every view of it occurs and yet which corner is "
        f"'top-left' is never ambiguous. Measured here: '{LANDMARK_NAMES[0]}' lies left of '{LANDMARK_NAMES[1]}' "
        f"for {100 * left_first:.1f}% of the {len(upright)} objects; after a left-right mirror only "
        f"{100 * after_flip:.1f}%, and after swapping the pairs {FLIP_PAIRS} (FLIP_PAIRS) again "
        f"{100 * after_swap:.1f}%. A landmark model trained with flips must swap them, or learn contradictions."
    )
    _formats(section, ctx, one_object_config)


def _semantic_and_one_object(section, ctx) -> None:
    import matplotlib.pyplot as plt

    from cnnkit.data.scene_dataset import load_scenes
    from cnnkit.viz.draw import draw_annotations

    sem = load_scenes(train=4, val=0, test=0, seed=ctx.seed, view="semantic", progress=False)["train"]
    loc = load_scenes(train=4, val=0, test=0, seed=ctx.seed, view="localisation", progress=False)["train"]
    fig, axes = plt.subplots(3, 4, figsize=(10, 7.8))
    for j in range(4):
        item = sem.raw(j)
        axes[0, j].imshow(item.image)
        axes[1, j].imshow(draw_annotations(item.image, {"semantic": item.semantic}, alpha=0.85, min_side=128))
        li = loc.raw(j)
        target = {"boxes": li.boxes, "labels": li.labels, "keypoints": li.keypoints}
        axes[2, j].imshow(draw_annotations(li.image, target, loc.classes, min_side=256))
    for ax in axes.ravel():
        ax.axis("off")
    axes[0, 0].set_title("image", fontsize=9, loc="left")
    axes[1, 0].set_title("semantic mask (class colours)", fontsize=9, loc="left")
    axes[2, 0].set_title("one-object scenes (localisation / landmarks)", fontsize=9, loc="left")
    fig.tight_layout(pad=0.3)
    section.figure(fig, "semantic-one-object",
                   "Top: scenes; middle: their semantic masks (view='semantic': 0 background, class k is k + 1); "
                   "bottom: the one-object scenes of view='localisation' and 'landmarks', objects larger and unhidden.")


def _formats(section, ctx, one_object_config) -> None:
    from cnnkit.data.detection_files import load_detection
    from cnnkit.data.scene_export import export_scenes
    from cnnkit.data.scenes import SceneConfig, make_scene

    config = SceneConfig(size=128, seed=ctx.seed)
    counts = {"train": 6, "val": 2, "test": 2}
    rows, snippets = [], {}
    with tempfile.TemporaryDirectory(prefix="cnnkit-scenes-") as tmp:
        for fmt in ("coco", "yolo", "voc", "labelpng"):
            out = Path(tmp) / fmt
            target = export_scenes(out, fmt, counts=counts, config=config, progress=False)
            files = sorted(p for p in out.rglob("*") if p.is_file())
            parts = load_detection(target, view="semantic" if fmt == "labelpng" else "detection", strict=True)
            same = total = 0
            for ds in parts.values():
                for i in range(len(ds)):
                    path = ds.source.path(i) if hasattr(ds.source, "path") else ds.source.pairs[i][0]
                    scene = make_scene(config, int(path.stem))
                    item = ds.raw(i)
                    if fmt == "labelpng":
                        ok = np.array_equal(item.semantic, scene.semantic)
                    else:
                        ok = np.array_equal(item.boxes, scene.boxes) and np.array_equal(item.labels, scene.labels)
                        if fmt == "coco":
                            ok = ok and np.array_equal(item.masks, scene.masks)
                    same += ok
                    total += 1
            what = {"coco": "boxes, labels, RLE masks, keypoints", "yolo": "boxes, labels", "voc": "boxes, labels",
                    "labelpng": "class per pixel"}[fmt]
            rows.append([fmt, len(files), total, f"{same}/{total}", what])
            snippets[fmt] = _snippet(fmt, out)
    section.text(
        "`cnnkit data scenes` writes scenes in the four formats other tools read, and cnnkit reads each back. "
        "Written, then read, then compared with the generator's own annotations:"
    )
    section.table(rows, ["format", "files", "images read", "identical", "compared"],
                  caption="Round trips of 10 scenes (6 train, 2 val, 2 test) per format")
    for text in snippets.values():
        section.code(text)
    section.code(
        "cnnkit data scenes --out scenes-coco --format coco --train 2000 --val 300 --test 300\n"
        "cnnkit data scenes --out scenes-yolo --format yolo --digits      # + dataset.yaml for ultralytics\n"
        "cnnkit data check scenes-yolo/dataset.yaml                         # counts, and every bad row named\n"
        "cnnkit data show scenes -o scenes.png                              # a picture like the ones above\n\n"
        "from cnnkit.data.scene_dataset import load_scenes\n"
        "parts = load_scenes(train=2000, val=300, test=300, view='detection')   # or semantic, localisation, ...\n"
        "image, target = parts['train'][0]   # (3,128,128) in [0,1]; boxes, labels, masks, keypoints, image_id\n"
        "from cnnkit.data.detection_files import load_detection\n"
        "parts = load_detection('scenes-yolo/dataset.yaml')   # the same samples from files"
    )


def _snippet(fmt: str, out: Path) -> str:
    import json

    if fmt == "coco":
        data = json.loads((out / "annotations" / "instances_train.json").read_text())
        a = dict(data["annotations"][0])
        seg = dict(a["segmentation"])
        seg["counts"] = seg["counts"][:24] + "..."
        a["segmentation"] = seg
        return ("annotations/instances_train.json (first image and object):\n" + json.dumps(data["images"][0])
                + "\n" + json.dumps(a))
    if fmt == "yolo":
        label = sorted((out / "labels" / "train").glob("*.txt"))[0]
        return (f"dataset.yaml:\n{(out / 'dataset.yaml').read_text()}\nlabels/train/{label.name} "
                f"(class cx cy w h, relative to the image):\n{label.read_text()}")
    if fmt == "voc":
        xml = sorted((out / "Annotations").glob("*.xml"))[0]
        lines = xml.read_text().splitlines()
        return f"Annotations/{xml.name}:\n" + "\n".join(lines[:18]) + ("\n..." if len(lines) > 18 else "")
    return ("labelpng: images/<split>/*.png with labels/<split>/*.png (index PNGs, VOC palette, 0 = background)\n"
            f"classes.txt:\n{(out / 'classes.txt').read_text()}")

"""Write built-in scenes to disk in a standard layout, so the formats can be seen and other tools can read them.

    export_scenes("out/", "coco", counts={"train": 100, "val": 20}, config=SceneConfig(size=128))

Layouts (images are PNG, named by scene index):
- coco:     images/<split>/*.png, annotations/instances_<split>.json (boxes, RLE masks, 4 keypoints)
- yolo:     images/<split>/*.png, labels/<split>/*.txt, dataset.yaml (ultralytics); keypoints only when asked,
            as a pose data set (kpt_shape [4, 3], flip_idx), since detection rows carry boxes alone
- voc:      JPEGImages/*.png, Annotations/*.xml, ImageSets/Main/<split>.txt, classes.txt
- labelpng: images/<split>/*.png, labels/<split>/*.png (index PNGs, VOC palette), classes.txt (background first)
Every file is written atomically.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from cnnkit.data.annotations import Annotations, ImageAnn, encode_masks
from cnnkit.data.coco import write_coco
from cnnkit.data.labelpng import write_label_png
from cnnkit.data.scenes import LANDMARK_NAMES, SPLIT_BASE, Scene, SceneConfig, make_scene
from cnnkit.data.voc import write_voc
from cnnkit.data.yolo import write_yolo
from cnnkit.errors import InputError
from cnnkit.io import atomic_write, save_image

FORMATS = ("coco", "yolo", "voc", "labelpng")
SKELETON = [[1, 2], [2, 3], [3, 4], [4, 1]]


def scene_image_ann(scene: Scene, file: str, *, keypoints: bool = True) -> ImageAnn:
    """The ImageAnn of a scene: boxes, labels, RLE masks and (x, y, visibility) landmarks."""
    h, w = scene.image.shape[:2]
    kps = None
    if keypoints:
        kps = np.concatenate([scene.landmarks, scene.visibility[..., None].astype(np.float32)], -1)
    return ImageAnn(file, w, h, scene.boxes.copy(), scene.labels.copy(), encode_masks(scene.masks), kps,
                    image_id=scene.index + 1)


def export_scenes(out_dir, fmt: str, *, counts: dict[str, int], config: SceneConfig,
                  keypoints: bool | None = None, progress: bool = True) -> Path:
    """Generate the scenes of each split and write them in format `fmt` under `out_dir`.

    Args:
        out_dir: output folder (made if missing).
        fmt: "coco", "yolo", "voc" or "labelpng".
        counts: scenes per split, e.g. {"train": 100, "val": 20, "test": 20}.
        config: the SceneConfig.
        keypoints: write landmarks (default: yes for COCO, no for YOLO; VOC and label PNGs have none).
        progress: show a bar.

    Returns:
        The file to point `load_detection` (or ultralytics, pycocotools ...) at: dataset.yaml for yolo, else
        the folder.
    """
    if fmt not in FORMATS:
        raise InputError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    out = Path(out_dir)
    kp = (fmt == "coco") if keypoints is None else keypoints
    per_split: dict[str, list[ImageAnn]] = {}
    total = sum(counts.values())
    bar = tqdm(total=total, desc=f"writing {fmt} scenes", unit="scene", leave=False,
               disable=not progress or total < 200)
    for split, n in counts.items():
        if split not in SPLIT_BASE:
            raise InputError(f"unknown split {split!r}; use train, val or test")
        anns = per_split.setdefault(split, [])
        for idx in range(SPLIT_BASE[split], SPLIT_BASE[split] + int(n)):
            scene = make_scene(config, idx)
            name = f"{idx:07d}.png"
            if fmt == "voc":
                save_image(out / "JPEGImages" / name, scene.image)
            else:
                save_image(out / "images" / split / name, scene.image)
            if fmt == "labelpng":
                write_label_png(out / "labels" / split / name, scene.semantic)
            anns.append(scene_image_ann(scene, name, keypoints=kp and fmt in ("coco", "yolo")))
            bar.update(1)
    bar.close()
    classes = list(config.classes)
    if fmt == "coco":
        for split, anns in per_split.items():
            ann = Annotations(classes, anns, out / "images" / split, keypoint_names=list(LANDMARK_NAMES) if kp else [],
                              skeleton=SKELETON if kp else [])
            write_coco(ann, out / "annotations" / f"instances_{split}.json")
        return out
    if fmt == "labelpng":
        with atomic_write(out / "classes.txt", "w") as f:
            f.write("".join(f"{c}\n" for c in ["background", *classes]))
        return out
    images, splits = [], {}
    for split, anns in per_split.items():
        splits[split] = list(range(len(images), len(images) + len(anns)))
        images += anns
    ann = Annotations(classes, images, out, splits=splits)
    if fmt == "voc":
        write_voc(ann, out)
        return out
    return write_yolo(ann, out)

"""Convert an annotated data set between COCO, YOLO and VOC (`cnnkit data convert`).

    read_annotations("coco/annotations/instances_train.json")   # any format -> Annotations, absolute image paths
    convert_annotations("VOCdevkit/VOC2012", "yolo", "voc-as-yolo/")

Images are copied (each atomically) into the target layout, keeping their names (prefixed by a number where two
images of one split share a name). What the target format cannot hold is dropped and reported: masks outside
COCO, keypoints in VOC.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from cnnkit.data.annotations import Annotations, ImageAnn
from cnnkit.data.coco import write_coco
from cnnkit.data.detection_files import coco_files, detect_format, merge_coco
from cnnkit.data.voc import read_voc, write_voc
from cnnkit.data.yolo import read_yolo, write_yolo
from cnnkit.errors import InputError
from cnnkit.io import atomic_write

TARGETS = ("coco", "yolo", "voc")


def read_annotations(source, *, strict: bool = False, classes=None) -> Annotations:
    """Any COCO / YOLO / VOC data set (layouts as `load_detection`) as Annotations with absolute image paths."""
    p = Path(source)
    fmt = detect_format(p)
    if fmt == "labelpng":
        raise InputError(f"{p}: label PNGs hold classes per pixel, not objects; nothing to convert to boxes")
    if fmt == "coco":
        return merge_coco({"train": p} if p.is_file() else coco_files(p), strict)
    if fmt == "yolo":
        yml = p if p.is_file() else next(q for q in (p / "dataset.yaml", p / "data.yaml") if q.is_file())
        ann = read_yolo(yml, strict=strict)
    else:
        ann = read_voc(p, classes=classes, strict=strict)
    for img in ann.images:
        f = Path(img.file)
        img.file = str(f if f.is_absolute() else (ann.image_root / f).resolve())
    ann.image_root = Path("/")
    return ann


def _copy(src: Path, dst: Path) -> None:
    with open(src, "rb") as fin, atomic_write(dst) as fout:
        shutil.copyfileobj(fin, fout)


def convert_annotations(source, fmt: str, out_dir, *, strict: bool = False, classes=None) -> tuple[Path, list[str]]:
    """Write the data set `source` in format `fmt` under `out_dir`; returns (what to load, notes on what was lost)."""
    if fmt not in TARGETS:
        raise InputError(f"unknown target format {fmt!r}; use one of {', '.join(TARGETS)}")
    ann = read_annotations(source, strict=strict, classes=classes)
    if not ann.images:
        raise InputError(f"{source}: no annotated images could be read")
    out = Path(out_dir)
    splits = ann.splits or {"train": list(range(len(ann.images)))}
    notes = []
    if fmt != "coco" and any(img.segmentations is not None for img in ann.images):
        notes.append(f"masks dropped ({fmt} holds boxes only)")
    if fmt == "voc" and any(img.keypoints is not None for img in ann.images):
        notes.append("keypoints dropped (VOC has none)")
    new_images: list[ImageAnn] = []
    new_splits: dict[str, list[int]] = {}
    for split, idx in splits.items():
        seen: set[str] = set()
        new_splits[split] = []
        for k in idx:
            img = ann.images[k]
            name = Path(img.file).name
            if name in seen or (fmt == "voc" and any(Path(i.file).stem == Path(name).stem for i in new_images)):
                name = f"{len(new_images):06d}_{name}"
            seen.add(name)
            folder = out / "JPEGImages" if fmt == "voc" else out / "images" / split
            _copy(Path(img.file), folder / name)
            keep = ImageAnn(name, img.width, img.height, img.boxes, img.labels,
                            img.segmentations if fmt == "coco" else None,
                            None if fmt == "voc" else img.keypoints, img.iscrowd, img.image_id)
            new_splits[split].append(len(new_images))
            new_images.append(keep)
    if fmt == "coco":
        for split, idx in new_splits.items():
            part = Annotations(ann.classes, [new_images[i] for i in idx], out / "images" / split, ann.category_ids,
                               ann.keypoint_names, ann.skeleton)
            write_coco(part, out / "annotations" / f"instances_{split}.json")
        return out, notes
    conv = Annotations(ann.classes, new_images, out, ann.category_ids, ann.keypoint_names, ann.skeleton, new_splits)
    if fmt == "voc":
        write_voc(conv, out)
        return out, notes
    return write_yolo(conv, out), notes

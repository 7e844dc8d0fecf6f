"""Detection and segmentation data from annotation files: `load_detection` finds the format from the layout.

    parts = load_detection("data/dataset.yaml")                 # ultralytics YAML + label folders
    parts = load_detection("coco/annotations/instances_train.json")
    parts = load_detection("VOCdevkit/VOC2012")                  # Annotations/ + JPEGImages/
    parts = load_detection("camvid/", view="semantic")           # images/ + labels/ (or masks/) PNGs

What is recognised, in this order:
- a .yaml/.yml file, or a folder holding dataset.yaml / data.yaml: YOLO (`cnnkit.data.yolo`);
- a .json file, or a folder whose annotations/ (or itself) holds COCO .json files: COCO; the split of each file
  follows its name (instances_train.json, ..._val, ..._test);
- a folder with Annotations/*.xml: Pascal VOC, splits from ImageSets/Main/{train,val,test}.txt;
- a folder with images/ and labels/ or masks/ holding PNGs paired by name: label PNGs (semantic view), with
  classes.txt (line 0 = the background, then one class a line) or class_dict.csv (name,r,g,b) beside them.
A source without its own val/test split gets them carved by a seeded shuffle (`val_fraction`, `test_fraction`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from cnnkit.data.annotations import Annotations, Problems, image_size
from cnnkit.data.coco import read_coco
from cnnkit.data.detection_dataset import DetectionDataset, DetectionItem
from cnnkit.data.labelpng import read_class_colours, read_label_png
from cnnkit.data.voc import read_voc
from cnnkit.data.yolo import read_yolo
from cnnkit.errors import FileFormatError, InputError, MissingFileError
from cnnkit.io import IMAGE_SUFFIXES, read_image

SPLITS = ("train", "val", "test")


def _check_size(path: Path, image: np.ndarray, width: int, height: int) -> None:
    if image.shape[:2] != (height, width):
        raise FileFormatError(f"{path}: the image is {image.shape[1]}x{image.shape[0]} but its annotation says "
                              f"{width}x{height}; fix the annotation or the image")


class AnnotationSource:
    """Images `indices` of an Annotations, decoded on demand (DetectionDataset's source)."""

    def __init__(self, ann: Annotations, indices, name: str):
        self.ann = ann
        self.indices = list(indices)
        self.classes = list(ann.classes)
        self.keypoint_names = tuple(ann.keypoint_names)
        self.flip_pairs = tuple(ann.flip_pairs)
        self.name = name
        # one target layout for every image: an image without masks / keypoints gets empty ones when others have them
        chosen = [ann.images[i] for i in self.indices]
        self.has_masks = any(img.segmentations is not None for img in chosen)
        ks = [img.keypoints.shape[1] for img in chosen if img.keypoints is not None and img.keypoints.ndim == 3]
        self.num_keypoints = max(ks) if ks else None

    def __len__(self) -> int:
        return len(self.indices)

    def path(self, i: int) -> Path:
        f = Path(self.ann.images[self.indices[i]].file)
        return f if f.is_absolute() else self.ann.image_root / f

    def boxes_and_size(self, i: int):
        img = self.ann.images[self.indices[i]]
        return img.boxes, img.labels, (img.height, img.width)

    def get(self, i: int) -> DetectionItem:
        img = self.ann.images[self.indices[i]]
        path = self.path(i)
        image = read_image(path)
        _check_size(path, image, img.width, img.height)
        n = len(img.labels)
        kps = None
        if self.num_keypoints is not None:
            kps = np.zeros((n, self.num_keypoints, 2), np.float32)
            if img.keypoints is not None and img.keypoints.shape[1:2] == (self.num_keypoints,):
                kps = np.asarray(img.keypoints, np.float32)[..., :2]
        masks = img.masks() if self.has_masks else None
        return DetectionItem(image, img.boxes, img.labels, masks, kps, None, int(img.image_id), img.iscrowd)


class LabelPngSource:
    """Pairs of (image, label PNG) for the semantic view; `classes` excludes the background (id 0)."""

    def __init__(self, pairs: list[tuple[Path, Path]], classes: list[str], palette=None, name: str = "labels"):
        self.pairs = pairs
        self.classes = classes
        self.palette = palette
        self.name = name

    def __len__(self) -> int:
        return len(self.pairs)

    def get(self, i: int) -> DetectionItem:
        ip, mp = self.pairs[i]
        image = read_image(ip)
        sem = read_label_png(mp, palette=self.palette)
        if sem.shape != image.shape[:2]:
            raise FileFormatError(f"{mp}: the mask is {sem.shape[1]}x{sem.shape[0]} but its image {ip.name} is "
                                  f"{image.shape[1]}x{image.shape[0]}; they must match")
        bad = (sem > len(self.classes)) & (sem != 255)
        if bad.any():
            y, x = np.argwhere(bad)[0]
            raise FileFormatError(f"{mp}: class id {sem[y, x]} at pixel (x={x}, y={y}) is beyond the "
                                  f"{len(self.classes) + 1} classes (background + {', '.join(self.classes)})")
        return DetectionItem(image, np.zeros((0, 4), np.float32), np.zeros(0, np.int64), semantic=sem, image_id=i)


def _carve(n: int, official: dict[str, list[int]] | None, seed: int, val_fraction: float,
           test_fraction: float) -> dict[str, list[int]]:
    """Splits: the source's own, with the missing val/test carved from train by a seeded shuffle."""
    official = {k: list(v) for k, v in (official or {}).items() if v}
    if not official:
        official = {"train": list(range(n))}
    base = official.get("train", [])
    need = [s for s in ("val", "test") if s not in official]
    if need and base:
        order = np.random.default_rng(seed).permutation(len(base))
        fr = {"val": val_fraction, "test": test_fraction}
        start, carved = 0, {}
        for s in need:
            k = int(round(fr[s] * len(base)))
            carved[s] = sorted(base[j] for j in order[start : start + k])
            start += k
        official["train"] = sorted(base[j] for j in order[start:])
        official.update(carved)
    return {s: official[s] for s in SPLITS if s in official}


def coco_files(p: Path) -> dict[str, Path]:
    folder = p / "annotations" if (p / "annotations").is_dir() else p
    files = sorted(folder.glob("*.json"))
    out = {}
    for f in files:
        stem = f.stem.lower()
        split = next((s for s in SPLITS if s in stem), None) or ("val" if "valid" in stem else None)
        out[split or "train"] = f
    return out


def _image_root_for(json_file: Path, split: str) -> Path | None:
    """Where a COCO file's images are: images/<split>/ or <split>2017-like folders beside annotations/."""
    base = json_file.parent.parent if json_file.parent.name == "annotations" else json_file.parent
    for cand in (base / "images" / split, base / split, base / "images", base):
        if cand.is_dir():
            return cand
    return None


def _label_png_pairs(root: Path, strict: bool) -> dict[str, list[tuple[Path, Path]]]:
    img_dir = root / "images"
    mask_dir = next(d for d in (root / "labels", root / "masks", root / "SegmentationClass") if d.is_dir())
    problems = Problems(strict)
    out: dict[str, list[tuple[Path, Path]]] = {}
    subdirs = [d.name for d in img_dir.iterdir() if d.is_dir() and d.name in SPLITS]
    for split in subdirs or [None]:
        idir = img_dir / split if split else img_dir
        mdir = mask_dir / split if split else mask_dir
        pairs = []
        for ip in sorted(q for q in idir.iterdir() if q.is_file() and q.suffix.lower() in IMAGE_SUFFIXES):
            mp = mdir / f"{ip.stem}.png"
            if not mp.is_file():
                problems.bad(f"{ip}: no label PNG {mp}", missing=True)
                continue
            try:
                if image_size(ip) != image_size(mp):
                    problems.bad(f"{mp}: size {image_size(mp)} differs from its image {ip.name} {image_size(ip)}")
                    continue
            except FileFormatError as e:
                problems.bad(str(e))
                continue
            pairs.append((ip, mp))
        out[split or "train"] = pairs
    return out


def _label_png_classes(root: Path):
    if (root / "class_dict.csv").is_file():
        names, colours = read_class_colours(root / "class_dict.csv")
        return names[1:], colours
    if (root / "classes.txt").is_file():
        names = [c.strip() for c in (root / "classes.txt").read_text("utf-8").splitlines() if c.strip()]
        return names[1:], None
    raise MissingFileError(f"{root}: label PNGs need classes.txt (background first, one class a line) or "
                           "class_dict.csv (name,r,g,b) beside images/ to name their classes")


def detect_format(path) -> str:
    """"yolo", "coco", "voc" or "labelpng" for a path, by its layout; FileFormatError when none fits."""
    p = Path(path)
    if not p.exists():
        raise MissingFileError(f"data set not found: {p}")
    if p.is_file():
        suffix = p.suffix.lower()
        if suffix in (".yaml", ".yml"):
            return "yolo"
        if suffix == ".json":
            return "coco"
        if suffix == ".xml":
            return "voc"
        raise FileFormatError(f"{p}: not an annotation file (expected .yaml, .json or .xml)")
    if (p / "dataset.yaml").is_file() or (p / "data.yaml").is_file():
        return "yolo"
    if (p / "Annotations").is_dir():
        return "voc"
    if coco_files(p):
        return "coco"
    if (p / "images").is_dir() and any((p / d).is_dir() for d in ("labels", "masks", "SegmentationClass")):
        mask_dir = next(p / d for d in ("labels", "masks", "SegmentationClass") if (p / d).is_dir())
        if next(mask_dir.rglob("*.png"), None) is not None:
            return "labelpng"
    if any(p.glob("*.xml")):
        return "voc"
    raise FileFormatError(
        f"{p}: no annotation layout found; expected dataset.yaml (YOLO), annotations/*.json (COCO), "
        "Annotations/*.xml (VOC), or images/ + labels/ PNGs (segmentation)"
    )


def load_detection(
    source,
    *,
    view: str = "detection",
    strict: bool = False,
    seed: int = 0,
    val_fraction: float = 0.15,
    test_fraction: float = 0.15,
    transform: Callable | None = None,
    letterbox: int | None = None,
    masks: bool = True,
    classes=None,
    palette=None,
) -> dict[str, DetectionDataset]:
    """Train/val/test DetectionDatasets of an annotated data set on disk (layouts in the module docstring).

    Args:
        source: a file or folder.
        view: "detection" or "semantic" (label PNGs only give "semantic"; boxes give masks when they have them).
        strict: raise on the first bad object, file or missing image instead of skipping it with a DataWarning.
        seed, val_fraction, test_fraction: how missing val/test splits are carved from train.
        transform: augmentation for the train split.
        letterbox: letterbox size for every split (None keeps each image's size).
        masks: include instance masks in detection targets.
        classes: VOC class names in label order (default: classes.txt, else every name found, sorted).
        palette: label-PNG colours when the masks are RGB (default: class_dict.csv if present).
    """
    p = Path(source)
    fmt = detect_format(p)
    name = str(p)
    if fmt == "labelpng":
        names, colours = _label_png_classes(p)
        pal = palette if palette is not None else colours
        pairs = _label_png_pairs(p, strict)
        flat = [pr for s in SPLITS if s in pairs for pr in pairs[s]]
        pos, start = {}, 0
        for s in SPLITS:
            if s in pairs:
                pos[s] = list(range(start, start + len(pairs[s])))
                start += len(pairs[s])
        splits = _carve(len(flat), pos, seed, val_fraction, test_fraction)
        if view != "semantic":
            raise InputError(f"{p}: label PNGs hold classes per pixel, not objects: use the semantic view")
        return {s: DetectionDataset(LabelPngSource([flat[i] for i in idx], names, pal, name), view="semantic",
                                    transform=transform if s == "train" else None, size=letterbox)
                for s, idx in splits.items() if idx}

    if fmt == "yolo":
        yml = p if p.is_file() else next(q for q in (p / "dataset.yaml", p / "data.yaml") if q.is_file())
        ann = read_yolo(yml, strict=strict)
    elif fmt == "voc":
        ann = read_voc(p, classes=classes, strict=strict)
    else:
        files = {"train": p} if p.is_file() else coco_files(p)
        ann = merge_coco(files, strict)
    splits = _carve(len(ann.images), ann.splits, seed, val_fraction, test_fraction)
    if not ann.images:
        raise InputError(f"{p}: no annotated images could be read")
    return {s: DetectionDataset(AnnotationSource(ann, idx, name), view=view,
                                transform=transform if s == "train" else None, size=letterbox, masks=masks)
            for s, idx in splits.items() if idx}


def merge_coco(files: dict[str, Path], strict: bool) -> Annotations:
    """One Annotations over several COCO files (one per split), with absolute image paths."""
    merged: Annotations | None = None
    for split, f in files.items():
        root = _image_root_for(f, split)
        ann = read_coco(f, image_root=root, strict=strict)
        for img in ann.images:
            img.file = str((ann.image_root / img.file).resolve())
        if merged is None:
            merged = Annotations(ann.classes, [], Path("/"), ann.category_ids, ann.keypoint_names, ann.skeleton, {})
        elif ann.classes != merged.classes:
            raise FileFormatError(f"{f}: its categories differ from {files[next(iter(files))]}'s")
        merged.splits[split] = list(range(len(merged.images), len(merged.images) + len(ann.images)))
        merged.images += ann.images
    assert merged is not None
    return merged

"""YOLO labels (`class cx cy w h`, normalised) and the ultralytics dataset YAML, read and written.

    ann = read_yolo("data/dataset.yaml")          # every split; ann.splits = {"train": [...], "val": [...]}
    write_yolo(ann, "out/")                        # out/images/<split>/, out/labels/<split>/, out/dataset.yaml

The YAML is the one ultralytics users have: `path` (the root; a relative one is taken from the YAML's folder,
then from the current folder), `train`, `val`, optional `test` (each a folder of images, a .txt listing images,
or a list of those, relative to `path`), `names` (a list, or a dict {0: name, ...}), optional `nc` and
`kpt_shape: [K, 2 or 3]`. As in ultralytics, an image's label file is found by replacing the last `/images/` of
its path with `/labels/` and the suffix with `.txt`; a missing or empty label file is an image with no objects.

A row is `class cx cy w h` (a box), `class cx cy w h` + K keypoints (`x y [v]`, with `kpt_shape`), or
`class x1 y1 x2 y2 x3 y3 ...` (a polygon, ultralytics' segment format; its box is the polygon's bounds).
Coordinates are written as the shortest exact decimal of the float64 ratio; reading multiplies back and snaps
to a 1/256-pixel grid within 1e-9 pixels, so boxes on such a grid (every integer, half, quarter pixel ...)
come back exactly.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from cnnkit.data.annotations import (
    Annotations,
    ImageAnn,
    Problems,
    boxes_array,
    check_annotations,
    check_box,
    image_size,
)
from cnnkit.errors import FileFormatError, InputError, MissingFileError
from cnnkit.io import IMAGE_SUFFIXES, atomic_write

SPLITS = ("train", "val", "test")
MAX_LABEL_BYTES = 10_000_000


def _snap(v: np.ndarray) -> np.ndarray:
    grid = np.round(v * 256.0) / 256.0
    return np.where(np.abs(v - grid) < 1e-9, grid, v)


def load_yaml(path: Path) -> dict:
    """The dataset YAML as a dict; FileFormatError when it is not YAML or not a mapping."""
    import yaml

    if not path.is_file():
        raise MissingFileError(f"dataset YAML not found: {path}")
    try:
        data = yaml.safe_load(path.read_text("utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError, RecursionError, ValueError) as e:
        raise FileFormatError(f"{path}: not a readable YAML file ({type(e).__name__})") from None
    if not isinstance(data, dict):
        raise FileFormatError(f"{path}: a dataset YAML must be a mapping with path/train/val/names keys")
    return data


def parse_names(names, nc, where: str) -> list[str]:
    """Class names from `names` (list or {index: name}) checked against `nc`."""
    if not isinstance(names, (dict, list)) or not names:
        raise FileFormatError(f"{where}: 'names' must be a list or a {{0: name, ...}} mapping of the classes")
    values = list(names.values()) if isinstance(names, dict) else names
    # checked before str(): a YAML alias bomb in a name would take forever to print
    if not all(isinstance(v, (str, int, float)) and not isinstance(v, bool) for v in values):
        raise FileFormatError(f"{where}: every class name must be a plain name, not a list or mapping")
    if isinstance(names, dict):
        try:
            keys = {int(k): v for k, v in names.items()}
        except (TypeError, ValueError):
            raise FileFormatError(f"{where}: names keys must be class numbers 0, 1, ...") from None
        if sorted(keys) != list(range(len(names))):
            raise FileFormatError(f"{where}: names keys must be 0..{len(names) - 1} without gaps or repeats")
        out = [str(keys[k]) for k in range(len(keys))]
    else:
        out = [str(n) for n in names]
    if nc is not None and nc != len(out):
        raise FileFormatError(f"{where}: nc is {nc!r:.20} but names lists {len(out)} classes")
    return out


def label_path(image: Path) -> Path:
    """ultralytics' rule: the last /images/ of the path becomes /labels/, the suffix .txt."""
    s = str(image)
    sa, sb = f"{os.sep}images{os.sep}", f"{os.sep}labels{os.sep}"
    if sa in s:
        s = sb.join(s.rsplit(sa, 1))
    return Path(s).with_suffix(".txt")


def _list_split(entry, root: Path, where: str, problems: Problems) -> list[Path]:
    out: list[Path] = []
    for item in entry if isinstance(entry, list) else [entry]:
        if not isinstance(item, str):
            raise FileFormatError(f"{where}: split entries must be folder or .txt paths, got {item!r:.40}")
        p = Path(item) if Path(item).is_absolute() else root / item
        if p.is_dir():
            out += sorted(q for q in p.rglob("*") if q.is_file() and q.suffix.lower() in IMAGE_SUFFIXES)
        elif p.is_file() and p.suffix.lower() == ".txt":
            for n, line in enumerate(p.read_text("utf-8", errors="replace").splitlines(), start=1):
                line = line.strip()
                if not line:
                    continue
                q = Path(line)
                if line.startswith("./"):
                    q = p.parent / line[2:]
                elif not q.is_absolute():
                    q = q if q.exists() else root / q
                if not q.is_file():
                    problems.bad(f"{p}:{n}: image not found: {line}", missing=True)
                    continue
                out.append(q)
        else:
            raise MissingFileError(f"{where}: {item} not found (looked for {p}); fix the path in the YAML")
    return out


def read_label_file(path: Path, width: int, height: int, nc: int, problems: Problems, kpt_shape=None):
    """(boxes, labels, segmentations or None, keypoints or None) of one label file; bad rows are skipped."""
    boxes, labels, segs, kps = [], [], [], []
    if not path.is_file():
        return boxes_array([]), np.zeros(0, np.int64), None, None
    try:
        if path.stat().st_size > MAX_LABEL_BYTES:
            raise ValueError("file too large")
        text = path.read_bytes().decode("utf-8-sig")  # a byte-order mark (Windows editors) is not a class id
    except (OSError, ValueError) as e:
        problems.bad(f"{path}: not a readable text label file ({type(e).__name__})")
        return None
    k, d = (int(kpt_shape[0]), int(kpt_shape[1])) if kpt_shape else (0, 0)
    for n, line in enumerate(text.splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        where = f"{path}:{n}"
        try:
            vals = np.asarray([float(v) for v in parts], np.float64)
        except ValueError:
            problems.bad(f"{where}: expected numbers, got {line.strip()[:60]!r}")
            continue
        if not np.all(np.isfinite(vals)):
            problems.bad(f"{where}: not finite numbers: {line.strip()[:60]!r}")
            continue
        c = vals[0]
        if c != int(c) or not 0 <= c < nc:
            problems.bad(f"{where}: unknown class {parts[0]} (the YAML names {nc} classes: 0..{nc - 1})")
            continue
        rest = vals[1:]
        seg = kp = None
        if kpt_shape and len(rest) == 4 + k * d:
            box_n = rest[:4]
            pk = rest[4:].reshape(k, d)
            kp = np.zeros((k, 3), np.float64)
            kp[:, 0], kp[:, 1] = _snap(pk[:, 0] * width), _snap(pk[:, 1] * height)
            kp[:, 2] = pk[:, 2] if d == 3 else np.where((pk[:, 0] == 0) & (pk[:, 1] == 0), 0, 2)
        elif not kpt_shape and len(rest) == 4:
            box_n = rest
        elif not kpt_shape and len(rest) >= 6 and len(rest) % 2 == 0:
            xy = rest.reshape(-1, 2)
            if np.any(xy < 0) or np.any(xy > 1):
                problems.bad(f"{where}: polygon coordinates must be normalised to [0, 1]")
                continue
            px = _snap(xy * [width, height])
            seg = [[float(v) for v in px.ravel()]]
            box_n = None
            b = (px[:, 0].min(), px[:, 1].min(), px[:, 0].max(), px[:, 1].max())
        else:
            want = f"5 numbers (class cx cy w h){f' + {k * d} keypoint values' if kpt_shape else ''}"
            problems.bad(f"{where}: {len(parts)} values; expected {want} or a polygon")
            continue
        if box_n is not None:
            cx, cy, w, h = box_n
            b = _snap(np.asarray([(cx - w / 2) * width, (cy - h / 2) * height,
                                  (cx + w / 2) * width, (cy + h / 2) * height]))
        bb, why = check_box(b, width, height)
        if bb is None:
            problems.bad(f"{where}: {why}")
            continue
        boxes.append(bb)
        labels.append(int(c))
        segs.append(seg)
        kps.append(kp)
    out_segs = segs if any(s is not None for s in segs) else None
    out_kps = np.stack(kps).astype(np.float32) if kps and all(kp is not None for kp in kps) else None
    if kpt_shape and not kps:
        out_kps = np.zeros((0, k, 3), np.float32)
    return boxes_array(boxes), np.asarray(labels, np.int64), out_segs, out_kps


def read_yolo(yaml_path, *, strict: bool = False, splits=SPLITS) -> Annotations:
    """Read an ultralytics dataset: the YAML, its image lists and label files, every split in `splits` it has.

    Returns:
        Annotations whose `splits` gives the images of each split; `file`s are paths relative to the root.
    """
    yaml_path = Path(yaml_path)
    data = load_yaml(yaml_path)
    where = str(yaml_path)
    names = parse_names(data.get("names"), data.get("nc"), where)
    if "train" not in data and "val" not in data:
        raise FileFormatError(f"{where}: no 'train' or 'val' entry naming the images")
    root = Path(data["path"]) if isinstance(data.get("path"), str) else yaml_path.parent
    if not root.is_absolute():
        root = yaml_path.parent / root if (yaml_path.parent / root).is_dir() or not root.is_dir() else root
    if not root.is_dir():
        raise MissingFileError(f"{where}: path {data.get('path')!r} is not a folder (looked for {root})")
    kpt_shape = data.get("kpt_shape")
    if kpt_shape is not None and (not isinstance(kpt_shape, list) or len(kpt_shape) != 2
                                  or kpt_shape[1] not in (2, 3) or not isinstance(kpt_shape[0], int)
                                  or kpt_shape[0] < 1):
        raise FileFormatError(f"{where}: kpt_shape must be [K, 2] or [K, 3], got {kpt_shape!r}")
    problems = Problems(strict)
    images: list[ImageAnn] = []
    split_idx: dict[str, list[int]] = {}
    for split in splits:
        if data.get(split) in (None, ""):
            continue
        paths = _list_split(data[split], root, f"{where}: {split}", problems)
        split_idx[split] = []
        if paths and not any(label_path(p).is_file() for p in paths):
            # a misnamed labels/ folder would otherwise turn every image into background without a word
            problems.bad(f"{where}: {split}: none of its {len(paths)} images has a label file (looked for "
                         f"{label_path(paths[0])} ...); each image is read as having no objects")
        for p in paths:
            try:
                w, h = image_size(p)
            except FileFormatError as e:
                problems.bad(str(e))
                continue
            got = read_label_file(label_path(p), w, h, len(names), problems, kpt_shape)
            if got is None:
                continue
            boxes, labels, segs, kps = got
            try:
                rel = str(p.relative_to(root))
            except ValueError:
                rel = str(p)
            split_idx[split].append(len(images))
            images.append(ImageAnn(rel, w, h, boxes, labels, segs, kps, image_id=len(images) + 1))
    kp_names = [f"kp{i}" for i in range(kpt_shape[0])] if kpt_shape else []
    return Annotations(names, images, root, keypoint_names=kp_names, splits=split_idx,
                       flip_pairs=_flip_pairs(data.get("flip_idx"), kpt_shape, where))


def _flip_pairs(flip_idx, kpt_shape, where: str) -> tuple:
    """Pairs (i, j), i < j, from ultralytics' flip_idx (keypoint i becomes flip_idx[i] in a mirror)."""
    if flip_idx is None or not kpt_shape:
        return ()
    k = kpt_shape[0]
    ok = isinstance(flip_idx, list) and len(flip_idx) == k and all(isinstance(v, int) for v in flip_idx)
    if not ok or sorted(flip_idx) != list(range(k)) or any(flip_idx[v] != i for i, v in enumerate(flip_idx)):
        raise FileFormatError(f"{where}: flip_idx must list, for each of the {k} keypoints, its mirror partner")
    return tuple((i, v) for i, v in enumerate(flip_idx) if v > i)


def _fmt(v: float) -> str:
    f = float(v)
    return str(int(f)) if f.is_integer() else repr(f)


def yolo_lines(img: ImageAnn) -> str:
    """The label file text of one image (boxes, plus keypoints when the image has them)."""
    w, h = float(img.width), float(img.height)
    rows = []
    for i, (box, lab) in enumerate(zip(np.asarray(img.boxes, np.float64), img.labels, strict=True)):
        x1, y1, x2, y2 = box
        vals = [(x1 + x2) / 2 / w, (y1 + y2) / 2 / h, (x2 - x1) / w, (y2 - y1) / h]
        if img.keypoints is not None:
            for x, y, v in np.asarray(img.keypoints[i], np.float64).reshape(-1, 3):
                vals += [x / w, y / h, v]
        rows.append(" ".join([str(int(lab))] + [_fmt(v) for v in vals]))
    return "".join(r + "\n" for r in rows)


def write_yolo_labels(ann: Annotations, labels_dir) -> None:
    """labels_dir/<image stem>.txt for every image (atomically; an image without objects gets an empty file)."""
    for img in ann.images:
        with atomic_write(Path(labels_dir) / f"{Path(img.file).stem}.txt", "w") as f:
            f.write(yolo_lines(img))


def write_yolo_yaml(path, names: list[str], splits: dict[str, str], *, root: str = ".", kpt_shape=None) -> Path:
    """The ultralytics dataset YAML: path (relative to the YAML), one folder per split, names as {i: name}."""
    import yaml

    data = {"path": root, **{s: v for s, v in splits.items()}, "names": dict(enumerate(names))}
    if kpt_shape:
        data["kpt_shape"] = list(kpt_shape)
        if len(kpt_shape) == 2 and kpt_shape[0] == 4:  # the scenes' corners: mirror pairs for ultralytics' fliplr
            data["flip_idx"] = [1, 0, 3, 2]
    text = yaml.safe_dump(data, sort_keys=False)
    with atomic_write(path, "w") as f:
        f.write(text)
    return Path(path)


def write_yolo(ann: Annotations, out_dir, *, yaml_name: str = "dataset.yaml") -> Path:
    """Labels of `ann` under out_dir/labels/<split>/ and the dataset YAML; images are expected (or copied by the
    caller) under out_dir/images/<split>/ with the same stems. Splits come from `ann.splits` (else all "train")."""
    check_annotations(ann)
    out = Path(out_dir)
    splits = ann.splits or {"train": list(range(len(ann.images)))}
    for split, idx in splits.items():
        sub = Annotations(ann.classes, [ann.images[i] for i in idx], ann.image_root)
        stems = [Path(im.file).stem for im in sub.images]
        if len(set(stems)) != len(stems):
            raise InputError(f"split {split}: two images share a file name stem; YOLO labels are named by stem")
        write_yolo_labels(sub, out / "labels" / split)
    kpt = None
    kps = [im.keypoints for im in ann.images if im.keypoints is not None and len(im.keypoints)]
    if kps:
        kpt = [int(kps[0].shape[1]), 3]
    return write_yolo_yaml(out / yaml_name, ann.classes, {s: f"images/{s}" for s in splits}, kpt_shape=kpt)

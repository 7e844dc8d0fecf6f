"""COCO JSON: read and write boxes, keypoints and masks (polygons or RLE) in the layout pycocotools reads.

    ann = read_coco("annotations/instances_train.json", image_root="images/train")
    write_coco(ann, "out/instances_train.json")

Boxes are COCO's [x, y, w, h] in pixels on file and xyxy in memory; classes are the categories sorted by id (their
ids are kept in `Annotations.category_ids` and written back). RLE strings are checked in Python before pycocotools
sees them: its C decoder trusts the counts, and a corrupt string would write outside its buffer.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from cnnkit.data.annotations import (
    OVERHANG,
    Annotations,
    ImageAnn,
    Problems,
    boxes_array,
    check_annotations,
    check_box,
    image_size,
    positive_int,
    resolve_image,
)
from cnnkit.errors import FileFormatError, MissingFileError
from cnnkit.io import atomic_write


def _load_json(path: Path):
    if not path.is_file():
        raise MissingFileError(f"COCO file not found: {path}")
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError, ValueError) as e:
        raise FileFormatError(f"{path}: not a readable JSON file ({type(e).__name__}: {str(e)[:80]})") from None


def _is_num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def rle_counts(s: str) -> list[int]:
    """The run lengths of a compressed COCO RLE string (pycocotools' rleFrString, in Python, with checks)."""
    counts: list[int] = []
    p = 0
    while p < len(s):
        x, k, more = 0, 0, True
        while more:
            if p >= len(s):
                raise ValueError("truncated RLE string")
            c = ord(s[p]) - 48
            if not 0 <= c < 64:
                raise ValueError(f"character {s[p]!r} is not RLE")
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if k > 12:
                raise ValueError("RLE number too long")
            if not more and (c & 0x10):
                x |= -1 << (5 * k)
        if len(counts) > 2:
            x += counts[-2]
        counts.append(x)
    return counts


def _check_segmentation(seg, height: int, width: int) -> str:
    """'' when `seg` is a valid COCO segmentation for an image of this size, else why not."""
    if isinstance(seg, list):
        if not seg:
            return "segmentation is an empty list"
        for poly in seg:
            if not isinstance(poly, list) or len(poly) < 6 or len(poly) % 2 or not all(_is_num(v) for v in poly):
                return "segmentation polygon must be a list of at least 3 (x, y) number pairs"
            # pycocotools rasterises in C with no bounds: a far-away point would make it walk billions of pixels
            xs, ys = poly[0::2], poly[1::2]
            if min(xs) < -OVERHANG or max(xs) > width + OVERHANG or min(ys) < -OVERHANG or max(ys) > height + OVERHANG:
                return f"a segmentation polygon point lies outside the {width}x{height} image"
        return ""
    if not isinstance(seg, dict) or "counts" not in seg or "size" not in seg:
        return "segmentation must be a list of polygons or an RLE dict with counts and size"
    size = seg["size"]
    if not isinstance(size, list) or len(size) != 2 or [v for v in size] != [height, width]:
        return f"RLE size {size!r} differs from the image's [{height}, {width}]"
    counts = seg["counts"]
    if isinstance(counts, str):
        try:
            counts = rle_counts(counts)
        except ValueError as e:
            return f"RLE counts: {e}"
    elif not isinstance(counts, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in counts):
        return "RLE counts must be a string or a list of whole numbers"
    if any(v < 0 for v in counts) or sum(counts) != height * width:
        return f"RLE run lengths do not cover the {width}x{height} image exactly"
    return ""


def read_coco(path, *, image_root=None, strict: bool = False, check_images: bool = True) -> Annotations:
    """Read a COCO annotation file.

    Args:
        path: the JSON file.
        image_root: folder the `file_name`s are relative to (default: the JSON's folder; `images/` beside or
            above it is also searched).
        strict: raise on the first bad object or missing image instead of skipping it with a DataWarning.
        check_images: look for every image file (a missing one is a bad image).

    Returns:
        Annotations (classes = category names sorted by id; crowd objects kept, flagged in `iscrowd`).
    """
    path = Path(path)
    data = _load_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise FileFormatError(f"{path}: not a COCO annotation file (expected an object with an 'images' list)")
    cats = data.get("categories", [])
    anns = data.get("annotations", [])
    if not isinstance(cats, list) or not isinstance(anns, list):
        raise FileFormatError(f"{path}: 'categories' and 'annotations' must be lists")
    if anns and not cats:
        raise FileFormatError(f"{path}: annotations but no 'categories' list to name their classes")
    root = Path(image_root) if image_root is not None else path.parent
    problems = Problems(strict)

    by_id: dict[int, dict] = {}
    for i, c in enumerate(cats):
        if not isinstance(c, dict) or not isinstance(c.get("id"), int) or not isinstance(c.get("name"), str):
            raise FileFormatError(f"{path}: category #{i} needs an integer 'id' and a string 'name', got {c!r:.80}")
        if c["id"] in by_id:
            raise FileFormatError(f"{path}: category id {c['id']} appears twice")
        by_id[c["id"]] = c
    cat_ids = sorted(by_id)
    label_of = {cid: k for k, cid in enumerate(cat_ids)}
    kp_names: list[str] = []
    skeleton: list = []
    for cid in cat_ids:
        if isinstance(by_id[cid].get("keypoints"), list):
            kp_names = [str(n) for n in by_id[cid]["keypoints"]]
            skeleton = by_id[cid].get("skeleton", []) if isinstance(by_id[cid].get("skeleton"), list) else []
            break

    images: dict[int, ImageAnn] = {}
    objects: dict[int, list] = {}
    for i, im in enumerate(data["images"]):
        where = f"{path}: image #{i}"
        if not isinstance(im, dict) or not isinstance(im.get("id"), int) or not isinstance(im.get("file_name"), str):
            problems.bad(f"{where} needs an integer 'id' and a string 'file_name'")
            continue
        where = f"{path}: image #{i} (id {im['id']}, {im['file_name']})"
        if im["id"] in images:
            problems.bad(f"{where}: the id is used twice")
            continue
        file = resolve_image(root, im["file_name"]) if check_images else None
        if check_images and file is None:
            problems.bad(f"{where}: image file not found under {root}", missing=True)
            continue
        try:
            if "width" in im or "height" in im or file is None:
                w, h = positive_int(im.get("width"), "width"), positive_int(im.get("height"), "height")
            else:
                w, h = image_size(file)
        except FileFormatError as e:
            problems.bad(f"{where}: {e}")
            continue
        images[im["id"]] = ImageAnn(im["file_name"], w, h, image_id=im["id"])
        objects[im["id"]] = []

    k_expected = len(kp_names) or None
    for j, a in enumerate(anns):
        where = f"{path}: annotation #{j}"
        if not isinstance(a, dict):
            problems.bad(f"{where} is not an object")
            continue
        if "id" in a:
            where += f" (id {a['id']!r:.20})"
        img = images.get(a.get("image_id")) if isinstance(a.get("image_id"), int) else None
        if img is None:
            problems.bad(f"{where}: image_id {a.get('image_id')!r:.20} names no (readable) image")
            continue
        cid = a.get("category_id")
        if not isinstance(cid, int) or isinstance(cid, bool) or cid not in label_of:
            problems.bad(f"{where}: unknown class (category_id {a.get('category_id')!r:.20})")
            continue
        bbox = a.get("bbox")
        if not isinstance(bbox, list) or len(bbox) != 4 or not all(_is_num(v) for v in bbox):
            problems.bad(f"{where}: bbox must be [x, y, width, height] numbers, got {bbox!r:.60}")
            continue
        x, y, w, h = (float(v) for v in bbox)
        box, why = check_box((x, y, x + w, y + h), img.width, img.height)
        if box is None:
            problems.bad(f"{where}: {why}")
            continue
        seg = a.get("segmentation")
        if seg is not None and seg != []:
            why = _check_segmentation(seg, img.height, img.width)
            if why:
                problems.bad(f"{where}: {why}")
                continue
        else:
            seg = None
        kps = a.get("keypoints")
        if kps is not None:
            ok = isinstance(kps, list) and len(kps) % 3 == 0 and all(_is_num(v) for v in kps)
            ok = ok and (k_expected is None or len(kps) == 3 * k_expected)
            if not ok:
                problems.bad(f"{where}: keypoints must be {3 * (k_expected or 1)} numbers (x, y, v) per keypoint")
                continue
            if any(v not in (0, 1, 2) for v in kps[2::3]):
                problems.bad(f"{where}: keypoint visibility must be 0, 1 or 2")
                continue
        crowd = a.get("iscrowd", 0)
        if crowd not in (0, 1):
            problems.bad(f"{where}: iscrowd must be 0 or 1, got {crowd!r:.20}")
            continue
        objects[a["image_id"]].append((box, label_of[a["category_id"]], seg, kps, bool(crowd)))

    out = []
    for iid, img in images.items():
        objs = objects[iid]
        img.boxes = boxes_array([o[0] for o in objs])
        img.labels = np.asarray([o[1] for o in objs], np.int64)
        if any(o[2] is not None for o in objs):
            img.segmentations = [o[2] for o in objs]
        if any(o[3] is not None for o in objs):
            k = max(len(o[3]) for o in objs if o[3] is not None) // 3
            kp = np.zeros((len(objs), k, 3), np.float32)
            for n, o in enumerate(objs):
                if o[3] is not None and len(o[3]) == 3 * k:
                    kp[n] = np.asarray(o[3], np.float64).reshape(k, 3)
            img.keypoints = kp
        if any(o[4] for o in objs):
            img.iscrowd = np.asarray([o[4] for o in objs], bool)
        out.append(img)
    classes = [str(by_id[c]["name"]) for c in cat_ids]
    return Annotations(classes, out, root, cat_ids, kp_names, skeleton)


def _num(v: float):
    """A JSON number: an int when whole (shorter files), else the float64 repr (exact)."""
    f = float(v)
    return int(f) if f.is_integer() and abs(f) < 2**53 else f


def coco_dict(ann: Annotations) -> dict:
    """The COCO JSON object of `ann` (segmentations written as they are: polygons or RLE)."""
    cat_ids = ann.category_ids or list(range(1, len(ann.classes) + 1))
    cats = []
    for cid, name in zip(cat_ids, ann.classes, strict=True):
        c = {"id": int(cid), "name": name, "supercategory": "object"}
        if ann.keypoint_names:
            c["keypoints"] = list(ann.keypoint_names)
            c["skeleton"] = list(ann.skeleton)
        cats.append(c)
    images, annotations = [], []
    next_id = 1
    ids = [int(img.image_id) for img in ann.images]
    if min(ids, default=1) < 1 or len(set(ids)) != len(ids):
        ids = list(range(1, len(ann.images) + 1))  # ids must be unique: number them afresh when they are not
    for img, iid in zip(ann.images, ids, strict=True):
        images.append({"id": iid, "file_name": img.file, "width": int(img.width), "height": int(img.height)})
        segs = img.segmentations
        for i, (box, lab) in enumerate(zip(np.asarray(img.boxes, np.float64), img.labels, strict=True)):
            x1, y1, x2, y2 = (float(v) for v in box)
            a = {"id": next_id, "image_id": iid, "category_id": int(cat_ids[int(lab)]),
                 "bbox": [_num(x1), _num(y1), _num(x2 - x1), _num(y2 - y1)],
                 "area": _num((x2 - x1) * (y2 - y1)),
                 "iscrowd": int(bool(img.iscrowd[i])) if img.iscrowd is not None else 0}
            if segs is not None and segs[i] is not None:
                a["segmentation"] = segs[i]
                if isinstance(segs[i], dict):
                    a["area"] = int(_rle_area(segs[i]))
            if img.keypoints is not None:
                kp = np.asarray(img.keypoints[i], np.float64).reshape(-1, 3)
                a["keypoints"] = [_num(v) for v in kp.ravel()]
                a["num_keypoints"] = int((kp[:, 2] > 0).sum())
            annotations.append(a)
            next_id += 1
    return {"images": images, "annotations": annotations, "categories": cats}


def _rle_area(seg: dict) -> int:
    counts = seg["counts"]
    counts = rle_counts(counts) if isinstance(counts, str) else counts
    return int(sum(counts[1::2]))


def write_coco(ann: Annotations, path) -> Path:
    """Write `ann` as a COCO JSON file (atomically: a crash leaves the old file or none)."""
    check_annotations(ann)
    text = json.dumps(coco_dict(ann), separators=(",", ":"))
    with atomic_write(path, "w") as f:
        f.write(text)
    return Path(path)

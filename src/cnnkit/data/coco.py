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


def rle_counts(s: str) -> np.ndarray:
    """The run lengths (int64) of a compressed COCO RLE string: pycocotools' rleFrString, vectorised, with checks.

    Each number is 1-12 characters of 6 bits (48 + value): 5 data bits, least significant group first, 0x20 =
    "more follows", 0x10 in the last group = negative; from the fourth number on, each adds the one two before.

    Raises:
        ValueError: a character outside the alphabet, a truncated or over-long number.
    """
    try:
        b = np.frombuffer(s.encode("ascii"), np.uint8).astype(np.int64) - 48
    except UnicodeEncodeError:
        raise ValueError("RLE strings hold ASCII characters only") from None
    if len(b) == 0:
        return np.zeros(0, np.int64)
    if b.min() < 0 or b.max() >= 64:
        bad = chr(int(b[(b < 0) | (b >= 64)][0]) + 48)
        raise ValueError(f"character {bad!r} is not RLE")
    ends = (b & 0x20) == 0
    if not ends[-1]:
        raise ValueError("truncated RLE string")
    last = np.flatnonzero(ends)
    first = np.concatenate([[0], last[:-1] + 1])
    length = last - first + 1
    if length.max() > 12:
        raise ValueError("RLE number too long")
    k = np.arange(len(b)) - np.repeat(first, length)  # position of each character within its number
    x = np.add.reduceat((b & 0x1F) << (5 * k), first)
    negative = (b[last] & 0x10) != 0
    x[negative] -= np.left_shift(1, 5 * length[negative])
    if np.abs(x).max() >= 2**40:  # no image has that many pixels; also keeps the sums below from overflowing
        raise ValueError("RLE number too large")
    x[1::2] = np.cumsum(x[1::2])  # counts[m] += counts[m - 2] for m > 2: running sums of odd and even positions
    x[2::2] = np.cumsum(x[2::2])
    return x


def check_rle_strings(strings: list[str], pixels: list[int]) -> list[str]:
    """Check many compressed RLE strings in one vectorised pass: for each, '' when its run lengths are valid for an
    image of `pixels[i]` pixels (non-negative, covering it exactly), else why not (the words `rle_counts` uses).

    The same decoding as `rle_counts`, on all strings at once: a file of 100,000 masks is checked in a few numpy
    calls instead of 100,000.
    """
    n = len(strings)
    out = [""] * n
    ascii_ok = [st.isascii() for st in strings]
    strings = [st if ok else "" for st, ok in zip(strings, ascii_ok, strict=True)]
    for i, ok in enumerate(ascii_ok):
        if not ok:
            out[i] = "RLE counts: RLE strings hold ASCII characters only"
    lens = np.asarray([len(st) for st in strings], np.int64)
    total = int(lens.sum())
    px = np.asarray(pixels, np.int64)
    if total == 0:
        miss = "RLE run lengths do not cover the image exactly"
        return [o or ("" if p == 0 else miss) for o, p in zip(out, px, strict=True)]
    b = np.frombuffer("".join(strings).encode("ascii"), np.uint8).astype(np.int64) - 48
    sid = np.repeat(np.arange(n), lens)  # string of each character
    bad_char = np.bincount(sid[(b < 0) | (b >= 64)], minlength=n) > 0
    b = np.clip(b, 0, 63)
    str_last = np.cumsum(lens) - 1
    nonempty = lens > 0
    ends = (b & 0x20) == 0
    truncated = nonempty & ~ends[np.where(nonempty, str_last, 0)]
    ends[str_last[nonempty]] = True  # numbers never run from one string into the next
    last = np.flatnonzero(ends)
    first = np.concatenate([[0], last[:-1] + 1])
    length = last - first + 1
    num_sid = sid[last]  # string of each number (ascending)
    too_long = np.bincount(num_sid[length > 12], minlength=n) > 0
    k = np.minimum(np.arange(len(b)) - np.repeat(first, length), 11)
    x = np.add.reduceat((b & 0x1F) << (5 * k), first)
    neg = (b[last] & 0x10) != 0
    x[neg] -= np.left_shift(1, 5 * np.minimum(length[neg], 12))
    too_large = np.bincount(num_sid[np.abs(x) >= 2**40], minlength=n) > 0
    x = np.clip(x, -(2**40), 2**40)
    nnum = np.bincount(num_sid, minlength=n)
    first_num = np.searchsorted(num_sid, np.arange(n))  # index of each string's first number
    m = np.arange(len(x)) - first_num[num_sid]  # position of each number within its string
    # counts[m] += counts[m - 2] for m > 2: running sums per (string, m == 0 / odd / even >= 2)
    group = num_sid * 3 + np.where(m == 0, 0, np.where(m % 2 == 1, 1, 2))
    order = np.argsort(group, kind="stable")
    xs, gs = x[order], group[order]
    cs = np.cumsum(xs)
    starts = np.flatnonzero(np.concatenate([[True], gs[1:] != gs[:-1]]))
    cs -= np.repeat(cs[starts] - xs[starts], np.diff(np.concatenate([starts, [len(gs)]])))
    counts = np.empty_like(x)
    counts[order] = cs
    negative = np.bincount(num_sid[counts < 0], minlength=n) > 0
    sums = np.zeros(n, np.int64)
    has = nnum > 0
    sums[has] = np.add.reduceat(counts, first_num[has])
    cover_bad = (sums != px) | (nnum > px + 1) | (nnum > 2**22)
    for i in range(n):
        if out[i]:
            continue
        if bad_char[i]:
            out[i] = "RLE counts: a character is not RLE"
        elif truncated[i]:
            out[i] = "RLE counts: truncated RLE string"
        elif too_long[i]:
            out[i] = "RLE counts: RLE number too long"
        elif too_large[i]:
            out[i] = "RLE counts: RLE number too large"
        elif negative[i] or cover_bad[i]:
            out[i] = "RLE run lengths do not cover the image exactly"
    return out


def _check_segmentation(seg, height: int, width: int, rle_verdict: str | None = None) -> str:
    """'' when `seg` is a valid COCO segmentation for an image of this size, else why not.

    `rle_verdict`: the result of `check_rle_strings` for a compressed RLE string, when already known.
    """
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
    if height * width >= 2**31:  # pycocotools keeps run lengths in 32 bits
        return f"a {width}x{height} image is too large for COCO RLE"
    counts = seg["counts"]
    if isinstance(counts, str) and rle_verdict is not None:
        return rle_verdict.replace("the image", f"the {width}x{height} image")
    if isinstance(counts, str):
        try:
            counts = rle_counts(counts)
        except ValueError as e:
            return f"RLE counts: {e}"
    elif not isinstance(counts, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in counts):
        return "RLE counts must be a string or a list of whole numbers"
    else:  # Python ints of any size: kept as objects when int64 could overflow
        counts = np.asarray(counts, dtype=object if counts and max(map(abs, counts)) >= 2**40 else np.int64)
    if len(counts) > height * width + 1 or np.any(counts < 0) or int(counts.sum()) != height * width:
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
    rle_verdicts = _rle_prepass(anns, images)
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
            why = _check_segmentation(seg, img.height, img.width, rle_verdicts.get(j))
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


def _rle_prepass(anns: list, images: dict) -> dict[int, str]:
    """Verdicts of every compressed RLE string whose image is known, checked in one pass: {annotation #: why}."""
    idx, strings, pixels = [], [], []
    for j, a in enumerate(anns):
        seg = a.get("segmentation") if isinstance(a, dict) else None
        iid = a.get("image_id") if isinstance(a, dict) else None
        if isinstance(seg, dict) and isinstance(seg.get("counts"), str) and isinstance(iid, int) and iid in images:
            img = images[iid]
            idx.append(j)
            strings.append(seg["counts"])
            pixels.append(img.height * img.width)
    return dict(zip(idx, check_rle_strings(strings, pixels), strict=True))


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
    counts = rle_counts(counts) if isinstance(counts, str) else np.asarray(counts, np.int64)
    return int(counts[1::2].sum())


def write_coco(ann: Annotations, path) -> Path:
    """Write `ann` as a COCO JSON file (atomically: a crash leaves the old file or none)."""
    check_annotations(ann)
    text = json.dumps(coco_dict(ann), separators=(",", ":"))
    with atomic_write(path, "w") as f:
        f.write(text)
    return Path(path)

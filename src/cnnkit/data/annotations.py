"""The in-memory form every annotation reader returns and every writer takes, and the checks they share.

    ann = read_coco("instances_train.json")     # or read_voc / read_yolo ... -> Annotations
    ann.classes, ann.images[0].boxes            # xyxy float32 pixels, labels int64 0-based
    write_yolo(ann, "out/")                      # any format to any other

Bad input (documented choice, as the classification data does): a file that cannot be parsed at all raises
`FileFormatError`. A bad object (box outside the image by more than 1 pixel, negative or zero size, unknown class,
malformed row) or an image that is missing is skipped with a `DataWarning` naming the file and the line/object,
or raises `FileFormatError` / `MissingFileError` with the same words when `strict=True`. A box overhanging the
image by at most 1 pixel is clipped to it (annotation tools round their coordinates).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cnnkit.data.sources import DataWarning
from cnnkit.errors import FileFormatError, MissingFileError

OVERHANG = 1.0  # pixels a box may leave the image by before it is an error (then it is clipped)
MAX_SIDE = 100_000  # larger image sides in an annotation are refused (a corrupt number, not a real image)


@dataclass
class ImageAnn:
    """One image and its objects.

    Attributes:
        file: path of the image relative to `Annotations.image_root` (as the annotation file names it).
        width, height: image size in pixels.
        boxes: float32 (N, 4) xyxy pixels (the image covers [0, W] x [0, H]).
        labels: int64 (N,) 0-based indices into `Annotations.classes`.
        segmentations: per object a COCO segmentation (list of polygons, or RLE dict) or None; None = no masks.
        keypoints: float32 (N, K, 3) (x, y, visibility 0/1/2), or None.
        iscrowd: bool (N,) or None (COCO crowd regions).
        image_id: integer id.
    """

    file: str
    width: int
    height: int
    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))
    labels: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    segmentations: list | None = None
    keypoints: np.ndarray | None = None
    iscrowd: np.ndarray | None = None
    image_id: int = 0

    def masks(self) -> np.ndarray:
        """uint8 (N, H, W) masks decoded from the segmentations (zeros for objects without one)."""
        return decode_segmentations(self.segmentations, len(self.labels), self.height, self.width)


@dataclass
class Annotations:
    """A set of annotated images.

    Attributes:
        classes: class names; labels index into them.
        images: one ImageAnn per image.
        image_root: folder the image files are relative to.
        category_ids: COCO category id of each class (kept so a COCO file is written back with its ids).
        keypoint_names: names of the K keypoints ([] when there are none).
        skeleton: COCO skeleton (pairs of 1-based keypoint indices), kept for writing.
        splits: {"train": [image positions], ...} when the source defines splits, else None.
        flip_pairs: keypoint index pairs a left-right mirror swaps (from a YOLO `flip_idx`), else ().
    """

    classes: list[str]
    images: list[ImageAnn]
    image_root: Path = Path(".")
    category_ids: list[int] | None = None
    keypoint_names: list[str] = field(default_factory=list)
    skeleton: list = field(default_factory=list)
    splits: dict[str, list[int]] | None = None
    flip_pairs: tuple = ()


class Problems:
    """Where bad objects go: raised when strict, else warned and skipped (`ok` says which)."""

    def __init__(self, strict: bool):
        self.strict = strict
        self.skipped = 0

    def bad(self, msg: str, *, missing: bool = False) -> None:
        """Report one bad object or image: raise when strict, else warn (the caller skips it)."""
        if self.strict:
            cls = MissingFileError if missing else FileFormatError
            raise cls(f"{msg}; fix it, or drop --strict (strict=False) to skip it with a warning")
        self.skipped += 1
        warnings.warn(f"skipping: {msg}", DataWarning, stacklevel=3)


def check_box(box, width: int, height: int) -> tuple[np.ndarray | None, str]:
    """A finite xyxy box inside the image (within OVERHANG, then clipped); (None, why) when it is not."""
    try:
        b = np.asarray([float(v) for v in box], np.float64)
    except (TypeError, ValueError):
        return None, f"box {box!r} is not 4 numbers"
    if b.shape != (4,) or not np.all(np.isfinite(b)):
        return None, f"box {list(box)!r} is not 4 finite numbers"
    x1, y1, x2, y2 = b
    if x2 <= x1 or y2 <= y1:
        return None, f"box ({x1:g}, {y1:g}, {x2:g}, {y2:g}) has zero or negative size"
    if x1 < -OVERHANG or y1 < -OVERHANG or x2 > width + OVERHANG or y2 > height + OVERHANG:
        return None, f"box ({x1:g}, {y1:g}, {x2:g}, {y2:g}) lies outside the {width}x{height} image"
    if x1 < 0 or y1 < 0 or x2 > width or y2 > height:
        b = np.clip(b, 0, [width, height, width, height])
        if b[2] <= b[0] or b[3] <= b[1]:
            return None, "box has no area inside the image"
    return b, ""


def check_annotations(ann: Annotations) -> None:
    """What a writer needs: per image (N, 4) boxes, N labels within the classes, N segmentations/keypoints."""
    from cnnkit.errors import InputError

    c = len(ann.classes)
    for img in ann.images:
        n = len(img.labels)
        if np.asarray(img.boxes).shape != (n, 4):
            raise InputError(f"{img.file}: boxes must be ({n}, 4) for {n} labels, got {np.asarray(img.boxes).shape}")
        if n and (np.min(img.labels) < 0 or np.max(img.labels) >= c):
            raise InputError(f"{img.file}: labels must be in 0..{c - 1} (the {c} classes)")
        for name in ("segmentations", "keypoints", "iscrowd"):
            v = getattr(img, name)
            if v is not None and len(v) != n:
                raise InputError(f"{img.file}: {name} has {len(v)} entries for {n} objects")


def boxes_array(boxes: list) -> np.ndarray:
    return np.asarray(boxes, np.float64).reshape(-1, 4).astype(np.float32)


def positive_int(value, what: str) -> int:
    """An integer > 0 from a number or numeric string, else FileFormatError naming `what`."""
    try:
        f = float(value)
    except (TypeError, ValueError):
        raise FileFormatError(f"{what} should be a positive whole number, got {value!r}") from None
    if not math.isfinite(f) or f != int(f) or f < 1 or f > MAX_SIDE:
        raise FileFormatError(f"{what} should be a positive whole number, got {value!r}")
    return int(f)


def decode_segmentations(segs: list | None, n: int, height: int, width: int) -> np.ndarray:
    """uint8 (N, H, W) from COCO segmentations (polygons or RLE), via pycocotools."""
    out = np.zeros((n, height, width), np.uint8)
    if not segs:
        return out
    from pycocotools import mask as mask_utils

    with warnings.catch_warnings():  # pycocotools' numpy-2 copy= deprecation, not ours to fix
        warnings.simplefilter("ignore", DeprecationWarning)
        for i, seg in enumerate(segs):
            if seg is None:
                continue
            if isinstance(seg, list):
                rles = mask_utils.frPyObjects([list(map(float, p)) for p in seg], height, width)
                rle = mask_utils.merge(rles)
            elif isinstance(seg.get("counts"), list):
                rle = mask_utils.frPyObjects(seg, height, width)
            else:
                counts = seg["counts"]
                rle = {"size": list(seg["size"]), "counts": counts.encode() if isinstance(counts, str) else counts}
            out[i] = mask_utils.decode(rle)
    return out


def encode_masks(masks: np.ndarray) -> list[dict]:
    """Compressed RLE dicts ({"size": [H, W], "counts": str}) of uint8 masks (N, H, W): exact, JSON-ready."""
    from pycocotools import mask as mask_utils

    if len(masks) == 0:
        return []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        rles = mask_utils.encode(np.asfortranarray(np.asarray(masks, np.uint8).transpose(1, 2, 0)))
    return [{"size": [int(v) for v in r["size"]], "counts": r["counts"].decode("ascii")} for r in rles]


def resolve_image(root: Path, file: str) -> Path | None:
    """The image file `file` under `root`, also looked for in root/images and ../images; None when missing."""
    p = Path(file)
    if p.is_absolute():
        return p if p.is_file() else None
    for base in (root, root / "images", root.parent / "images", root.parent):
        q = base / p
        if q.is_file():
            return q
    return None


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) of an image file from its header; FileFormatError when it is not an image."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return im.size
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise FileFormatError(f"not a readable image: {path} ({type(e).__name__})") from None

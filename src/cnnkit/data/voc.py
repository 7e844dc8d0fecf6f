"""Pascal VOC XML: one file per image, read and written.

    ann = read_voc("VOCdevkit/VOC2012")          # Annotations/*.xml, JPEGImages/, ImageSets/Main/*.txt splits
    write_voc(ann, "out/")                        # out/Annotations/<image stem>.xml

VOC numbers pixels from 1 and its boxes include both ends; in memory boxes are continuous xyxy, so
x1 = xmin - 1, x2 = xmax (a box over the whole image is 0..W). `difficult` objects are kept and flagged in
`ImageAnn.iscrowd` (both mean "do not count detections here"), and written back as difficult. A missing or zero
<size> is measured from the image.

Safety: a file with a DTD or entity declaration is refused (entity expansion is the classic XML attack, and
VOC files never need one), as are files over 5 MB.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
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
    positive_int,
)
from cnnkit.errors import FileFormatError, InputError, MissingFileError
from cnnkit.io import IMAGE_SUFFIXES, atomic_write

MAX_XML_BYTES = 5_000_000


def parse_xml_safely(path: Path) -> ET.Element:
    """Parse an XML file, refusing DTDs, entities and huge files; FileFormatError when it is not XML."""
    try:
        size = path.stat().st_size
        if size > MAX_XML_BYTES:
            raise FileFormatError(f"{path}: {size} bytes is too large for an annotation file")
        data = path.read_bytes()
    except OSError as e:
        raise FileFormatError(f"{path}: cannot be read ({type(e).__name__})") from None
    lowered = data.lower()
    if b"<!doctype" in lowered or b"<!entity" in lowered:
        raise FileFormatError(f"{path}: refused: the XML declares a DTD or entities, which annotation files never need")
    try:
        return ET.fromstring(data)
    except (ET.ParseError, ValueError, RecursionError) as e:
        raise FileFormatError(f"{path}: malformed XML ({e})") from None


def _text(node: ET.Element | None, tag: str) -> str | None:
    child = node.find(tag) if node is not None else None
    return child.text.strip() if child is not None and child.text is not None else None


def _parse_file(path: Path, image_dir: Path, check_images: bool, problems: Problems):
    """(ImageAnn without labels, [(name, box, difficult)]) of one XML file, or None when it is bad."""
    try:
        root = parse_xml_safely(path)
    except FileFormatError as e:
        problems.bad(str(e))
        return None
    if root.tag != "annotation":
        problems.bad(f"{path}: not a VOC annotation (root element <{root.tag}>, expected <annotation>)")
        return None
    filename = _text(root, "filename")
    candidates = [filename] if filename else [path.stem + s for s in IMAGE_SUFFIXES]
    found = next((image_dir / c for c in candidates if (image_dir / c).is_file()), None)
    if check_images and found is None:
        problems.bad(f"{path}: image {filename or path.stem} not found in {image_dir}", missing=True)
        return None
    file = filename or (found.name if found else path.stem + ".jpg")
    try:
        size = root.find("size")
        try:
            w, h = positive_int(_text(size, "width"), "width"), positive_int(_text(size, "height"), "height")
        except FileFormatError:
            if found is None:
                raise
            w, h = image_size(found)  # a missing or zero <size> (some VOC files have one): measure the image
    except FileFormatError as e:
        problems.bad(f"{path}: {e}")
        return None
    objects = []
    for n, obj in enumerate(root.findall("object"), start=1):
        where = f"{path}: object {n}"
        name = _text(obj, "name")
        box = obj.find("bndbox")
        if not name:
            problems.bad(f"{where} has no <name>")
            continue
        coords = [_text(box, t) for t in ("xmin", "ymin", "xmax", "ymax")]
        try:
            xmin, ymin, xmax, ymax = (float(c) for c in coords)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            problems.bad(f"{where} ({name}): <bndbox> needs numeric xmin, ymin, xmax, ymax, got {coords}")
            continue
        b, why = check_box((xmin - 1, ymin - 1, xmax, ymax), w, h)
        if b is None:
            problems.bad(f"{where} ({name}): {why}")
            continue
        difficult = _text(obj, "difficult") in ("1", "true")
        objects.append((name, b, difficult))
    return ImageAnn(file, w, h), objects


def read_voc(source, *, image_root=None, classes=None, strict: bool = False, check_images: bool = True) -> Annotations:
    """Read Pascal VOC annotations.

    Args:
        source: a VOC folder (Annotations/ with JPEGImages/ beside it), a folder of XML files, or one XML file.
        image_root: folder of the images (default JPEGImages/ or images/ beside Annotations/, else the XMLs' folder).
        classes: the class names in label order; an object of another class is bad. Default: every name found,
            sorted (or classes.txt / labels.txt in the folder, one name a line, when there is one).
        strict: raise on the first bad object, file or missing image instead of skipping it with a DataWarning.
        check_images: require every image to exist.
    """
    src = Path(source)
    if not src.exists():
        raise MissingFileError(f"VOC annotations not found: {src}")
    base = src if src.is_dir() else src.parent
    xml_dir = base / "Annotations" if (base / "Annotations").is_dir() else base
    files = [src] if src.is_file() else sorted(xml_dir.glob("*.xml"))
    if not files:
        raise InputError(f"{src}: no .xml annotation files (expected Annotations/*.xml)")
    root_dir = xml_dir.parent if xml_dir.name == "Annotations" else xml_dir
    dirs = [Path(image_root)] if image_root else [root_dir / "JPEGImages", root_dir / "images", xml_dir]
    image_dir = next((d for d in dirs if d.is_dir()), dirs[0])
    if classes is None:
        for name in ("classes.txt", "labels.txt"):
            if (root_dir / name).is_file():
                classes = [c.strip() for c in (root_dir / name).read_text("utf-8").splitlines() if c.strip()]
                break
    problems = Problems(strict)
    parsed = [(f, _parse_file(f, image_dir, check_images, problems)) for f in files]
    parsed = [(f, p) for f, p in parsed if p is not None]
    if classes is None:
        classes = sorted({name for _, (_, objs) in parsed for name, _, _ in objs})
    index = {c: k for k, c in enumerate(classes)}
    images: list[ImageAnn] = []
    stems: list[str] = []
    for f, (img, objs) in parsed:
        boxes, labels, hard = [], [], []
        for n, (name, b, difficult) in enumerate(objs, start=1):
            if name not in index:
                problems.bad(f"{f}: object {n}: unknown class {name!r} (classes: {', '.join(classes)})")
                continue
            boxes.append(b)
            labels.append(index[name])
            hard.append(difficult)
        img.boxes, img.labels = boxes_array(boxes), np.asarray(labels, np.int64)
        img.iscrowd = np.asarray(hard, bool) if any(hard) else None
        img.image_id = len(images) + 1
        images.append(img)
        stems.append(f.stem)
    splits = _read_image_sets(root_dir / "ImageSets" / "Main", stems)
    return Annotations(list(classes), images, image_dir, splits=splits)


def _read_image_sets(folder: Path, stems: list[str]) -> dict[str, list[int]] | None:
    if not folder.is_dir():
        return None
    pos = {s: i for i, s in enumerate(stems)}
    splits = {}
    for split in ("train", "val", "test"):
        f = folder / f"{split}.txt"
        if f.is_file():
            names = [ln.split()[0] for ln in f.read_text("utf-8", errors="replace").splitlines() if ln.strip()]
            splits[split] = [pos[n] for n in names if n in pos]
    return splits or None


def _num(v: float) -> str:
    f = float(v)
    return str(int(f)) if f.is_integer() else repr(f)


def voc_xml(img: ImageAnn, classes: list[str]) -> bytes:
    """The VOC XML of one image."""
    root = ET.Element("annotation")
    ET.SubElement(root, "filename").text = Path(img.file).name
    size = ET.SubElement(root, "size")
    ET.SubElement(size, "width").text = str(int(img.width))
    ET.SubElement(size, "height").text = str(int(img.height))
    ET.SubElement(size, "depth").text = "3"
    for i, (box, lab) in enumerate(zip(np.asarray(img.boxes, np.float64), img.labels, strict=True)):
        obj = ET.SubElement(root, "object")
        ET.SubElement(obj, "name").text = classes[int(lab)]
        ET.SubElement(obj, "difficult").text = "1" if img.iscrowd is not None and img.iscrowd[i] else "0"
        bb = ET.SubElement(obj, "bndbox")
        for tag, v in zip(("xmin", "ymin", "xmax", "ymax"), (box[0] + 1, box[1] + 1, box[2], box[3]), strict=True):
            ET.SubElement(bb, tag).text = _num(v)
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=False) + b"\n"


def write_voc(ann: Annotations, out_dir, *, split_names: dict[str, list[int]] | None = None) -> Path:
    """Write out_dir/Annotations/<image stem>.xml for every image (each atomically), and ImageSets/Main/<split>.txt
    when `split_names` (or `ann.splits`) gives the images of each split."""
    check_annotations(ann)
    out = Path(out_dir)
    stems = [Path(img.file).stem for img in ann.images]
    if len(set(stems)) != len(stems):
        raise InputError("VOC needs one XML per image name: two images share a file name stem")
    for img, stem in zip(ann.images, stems, strict=True):
        with atomic_write(out / "Annotations" / f"{stem}.xml") as f:
            f.write(voc_xml(img, ann.classes))
    for split, idx in (split_names or ann.splits or {}).items():
        with atomic_write(out / "ImageSets" / "Main" / f"{split}.txt", "w") as f:
            f.write("".join(f"{stems[i]}\n" for i in idx))
    with atomic_write(out / "classes.txt", "w") as f:
        f.write("".join(f"{c}\n" for c in ann.classes))
    return out

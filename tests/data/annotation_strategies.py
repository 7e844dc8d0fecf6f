"""Hypothesis strategies and helpers shared by the annotation-format tests (imported, not collected)."""

from __future__ import annotations

import warnings

import numpy as np
from hypothesis import strategies as st

from cnnkit.data.annotations import Annotations, ImageAnn, encode_masks
from cnnkit.errors import CnnkitError

CLASSES = ["cat", "dog", "bird"]


@st.composite
def boxes_in(draw, width: int, height: int, n: int, grid: int = 16):
    """n xyxy boxes inside a width x height image, on a 1/grid pixel grid (float32-exact), positive size."""
    out = []
    for _ in range(n):
        x1 = draw(st.integers(0, width * grid - 1))
        x2 = draw(st.integers(x1 + 1, width * grid))
        y1 = draw(st.integers(0, height * grid - 1))
        y2 = draw(st.integers(y1 + 1, height * grid))
        out.append((x1 / grid, y1 / grid, x2 / grid, y2 / grid))
    return np.asarray(out, np.float32).reshape(-1, 4)


@st.composite
def image_anns(draw, *, masks: bool = False, keypoints: int = 0, crowd: bool = False, max_images: int = 4):
    """A list of ImageAnn with random sizes, boxes, labels, and optionally masks, keypoints and crowd flags."""
    n_img = draw(st.integers(1, max_images))
    images = []
    for i in range(n_img):
        w, h = draw(st.integers(4, 40)), draw(st.integers(4, 40))
        n = draw(st.integers(0, 4))
        boxes = draw(boxes_in(w, h, n))
        labels = np.asarray(draw(st.lists(st.integers(0, len(CLASSES) - 1), min_size=n, max_size=n)), np.int64)
        img = ImageAnn(f"img{i:03d}.png", w, h, boxes, labels, image_id=i + 1)
        if masks and n:
            seed = draw(st.integers(0, 2**31))
            m = (np.random.default_rng(seed).random((n, h, w)) < 0.3).astype(np.uint8)
            img.segmentations = encode_masks(m)
            img.extra_masks = m  # the truth, for the test
        if keypoints:
            kp = np.zeros((n, keypoints, 3), np.float32)
            if n:
                kp[..., 0] = np.asarray(draw(st.lists(st.integers(0, w * 4), min_size=n * keypoints,
                                                      max_size=n * keypoints))).reshape(n, keypoints) / 4
                kp[..., 1] = np.asarray(draw(st.lists(st.integers(0, h * 4), min_size=n * keypoints,
                                                      max_size=n * keypoints))).reshape(n, keypoints) / 4
                kp[..., 2] = np.asarray(draw(st.lists(st.sampled_from([0, 1, 2]), min_size=n * keypoints,
                                                      max_size=n * keypoints))).reshape(n, keypoints)
            img.keypoints = kp
        if crowd and n:
            img.iscrowd = np.asarray(draw(st.lists(st.booleans(), min_size=n, max_size=n)), bool)
        images.append(img)
    return images


def write_pngs(folder, images: list[ImageAnn]) -> None:
    """Tiny PNGs of the sizes the annotations give (the readers look for them)."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for img in images:
        Image.fromarray(np.zeros((img.height, img.width, 3), np.uint8)).save(folder / img.file)


def same_annotations(a: Annotations, b: Annotations, *, masks=False, keypoints=False, crowd=False) -> None:
    assert a.classes == b.classes
    assert len(a.images) == len(b.images)
    for x, y in zip(a.images, b.images, strict=True):
        assert (x.width, x.height) == (y.width, y.height)
        assert np.array_equal(np.asarray(x.boxes, np.float32).reshape(-1, 4), y.boxes), (x.boxes, y.boxes)
        assert y.boxes.dtype == np.float32 and y.labels.dtype == np.int64
        assert np.array_equal(x.labels, y.labels)
        if masks and len(x.labels):
            assert np.array_equal(y.masks(), x.extra_masks)
        if keypoints and len(x.labels):
            assert np.array_equal(np.asarray(x.keypoints, np.float32), y.keypoints)
        if crowd:
            xc = x.iscrowd if x.iscrowd is not None else np.zeros(len(x.labels), bool)
            yc = y.iscrowd if y.iscrowd is not None else np.zeros(len(y.labels), bool)
            assert np.array_equal(xc, yc)


def only_cnnkit_errors(fn, *args, **kwargs):
    """Call fn; any exception but a CnnkitError fails the test. Returns the result or the error."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return fn(*args, **kwargs)
        except CnnkitError as e:
            assert str(e).strip() and "\n" not in str(e), f"error message should be one line: {e!r}"
            return e


def mutate(data: bytes, draw) -> bytes:
    """A damaged copy of data: truncated, bytes flipped, a slice repeated or junk inserted."""
    kind = draw(st.sampled_from(["truncate", "flip", "repeat", "insert", "junk"]))
    if not data or kind == "junk":
        return draw(st.binary(max_size=300))
    i = draw(st.integers(0, len(data) - 1))
    if kind == "truncate":
        return data[:i]
    if kind == "flip":
        b = bytearray(data)
        for _ in range(draw(st.integers(1, 8))):
            j = draw(st.integers(0, len(b) - 1))
            b[j] = draw(st.integers(0, 255))
        return bytes(b)
    if kind == "repeat":
        j = draw(st.integers(i, min(len(data), i + 50)))
        return data[:j] + data[i:j] * draw(st.integers(1, 5)) + data[j:]
    return data[:i] + draw(st.sampled_from([b"-1", b"1e308", b"nan", b"\x00", b"\"", b"{", b"[", b"<", b"999999"])) + \
        data[i:]

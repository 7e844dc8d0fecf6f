"""MTCNN against facenet-pytorch's MTCNN with the same weights, on real photos; no face, several faces."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from facenet_shim import load_facenet_mtcnn  # tests/face is on sys.path (pytest prepend import mode)

from cnnkit.face.mtcnn import MTCNN, _nms_min


def _photos():
    import matplotlib.cbook
    import skimage.data
    from PIL import Image

    with Image.open(matplotlib.cbook.get_sample_data("grace_hopper.jpg")) as im:
        grace = np.asarray(im.convert("RGB"))
    return {"astronaut": skimage.data.astronaut(), "grace_hopper": grace}


@pytest.fixture(scope="module")
def ours():
    return MTCNN()


@pytest.fixture(scope="module")
def photos():
    return _photos()


@pytest.mark.parametrize("name", ["astronaut", "grace_hopper"])
def test_equal_to_facenet_pytorch(ours, photos, name):
    ref_cls = load_facenet_mtcnn()
    if ref_cls is None:
        pytest.skip("facenet-pytorch is not installed")
    from PIL import Image

    torch.manual_seed(0)
    ref = ref_cls(keep_all=True, device="cpu")
    img = photos[name]
    boxes, probs, points = ref.detect(Image.fromarray(img), landmarks=True)
    det = ours.detect(img)
    assert len(det) == len(boxes) == 1
    np.testing.assert_allclose(det.boxes, boxes.astype(np.float32), atol=1.0)
    np.testing.assert_allclose(det.landmarks, points.astype(np.float32), atol=1.0)
    np.testing.assert_allclose(det.scores, probs.astype(np.float32), atol=1e-4)


def test_no_face_and_several_faces(ours, photos):
    assert len(ours.detect(np.full((200, 300, 3), 128, np.uint8))) == 0
    assert len(ours.detect(np.zeros((10, 10, 3), np.uint8))) == 0  # smaller than the smallest face
    two = np.concatenate([photos["astronaut"][:300, 100:350], photos["grace_hopper"][100:400, 130:400]], axis=1)
    det = ours.detect(two)
    assert len(det) == 2
    assert det.boxes[det.largest(), 0] > 250  # Grace Hopper's face, on the right, is the larger one
    grey = ours.detect(photos["astronaut"].mean(2).astype(np.uint8))
    assert len(grey) == 1


def _nms_min_loop(boxes, scores, thr):
    """Greedy by descending score, dropping boxes whose intersection / smaller area exceeds thr."""
    order = sorted(range(len(scores)), key=lambda i: -scores[i])
    keep, dead = [], set()
    for i in order:
        if i in dead:
            continue
        keep.append(i)
        for j in order:
            if j != i and j not in dead and j not in keep:
                iw = max(0.0, min(boxes[i][2], boxes[j][2]) - max(boxes[i][0], boxes[j][0]) + 1)
                ih = max(0.0, min(boxes[i][3], boxes[j][3]) - max(boxes[i][1], boxes[j][1]) + 1)
                a = lambda b: (b[2] - b[0] + 1) * (b[3] - b[1] + 1)  # noqa: E731
                if iw * ih / min(a(boxes[i]), a(boxes[j])) > thr:
                    dead.add(j)
    return keep


def test_nms_min_against_a_loop():
    rng = np.random.default_rng(0)
    for _ in range(20):
        xy = rng.uniform(0, 50, (15, 2))
        boxes = np.concatenate([xy, xy + rng.uniform(5, 30, (15, 2))], 1)
        scores = rng.permutation(15).astype(np.float64)  # distinct
        assert _nms_min(boxes, scores, 0.7).tolist() == _nms_min_loop(boxes, scores, 0.7)


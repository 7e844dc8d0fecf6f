"""Face chips: the similarity fit against exact transforms, and the chip against dlib's get_face_chip."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cnnkit.face.align import chip_points, face_chip, similarity_transform

# dlib's mean face, points 17..67 on [0, 1] (dlib/image_transforms/interpolation.h, get_face_chip_details)
MEAN_X = [0.000213256, 0.0752622, 0.18113, 0.29077, 0.393397, 0.586856, 0.689483, 0.799124, 0.904991, 0.98004,
          0.490127, 0.490127, 0.490127, 0.490127, 0.36688, 0.426036, 0.490127, 0.554217, 0.613373, 0.121737,
          0.187122, 0.265825, 0.334606, 0.260918, 0.182743, 0.645647, 0.714428, 0.793132, 0.858516, 0.79751,
          0.719335, 0.254149, 0.340985, 0.428858, 0.490127, 0.551395, 0.639268, 0.726104, 0.642159, 0.556721,
          0.490127, 0.423532, 0.338094, 0.290379, 0.428096, 0.490127, 0.552157, 0.689874, 0.553364, 0.490127,
          0.42689]
MEAN_Y = [0.106454, 0.038915, 0.0187482, 0.0344891, 0.0773906, 0.0773906, 0.0344891, 0.0187482, 0.038915,
          0.106454, 0.203352, 0.307009, 0.409805, 0.515625, 0.587326, 0.609345, 0.628106, 0.609345, 0.587326,
          0.216423, 0.178758, 0.179852, 0.231733, 0.245099, 0.244077, 0.231733, 0.179852, 0.178758, 0.216423,
          0.244077, 0.245099, 0.780233, 0.745405, 0.727388, 0.742578, 0.727388, 0.745405, 0.780233, 0.864805,
          0.902192, 0.909281, 0.902192, 0.864805, 0.784792, 0.778746, 0.785343, 0.778746, 0.784792, 0.824182,
          0.831803, 0.824182]


def _apply(m, p):
    return p @ m[:, :2].T + m[:, 2]


@settings(max_examples=30, deadline=None)
@given(angle=st.floats(-3.0, 3.0), scale=st.floats(0.1, 10.0), tx=st.floats(-100, 100), ty=st.floats(-100, 100))
def test_similarity_recovers_an_exact_transform(angle, scale, tx, ty):
    src = np.random.default_rng(0).uniform(0, 100, (5, 2))
    c, s = np.cos(angle) * scale, np.sin(angle) * scale
    m = np.array([[c, -s, tx], [s, c, ty]])
    np.testing.assert_allclose(similarity_transform(src, _apply(m, src)), m, atol=1e-6 * max(1, scale))


def test_similarity_is_least_squares():
    rng = np.random.default_rng(1)
    src, dst = rng.normal(size=(5, 2)), rng.normal(size=(5, 2))
    m = similarity_transform(src, dst)
    best = ((_apply(m, src) - dst) ** 2).sum()
    for _ in range(200):  # no nearby similarity fits better
        a, b = m[0, 0] + rng.normal(0, 0.01), m[1, 0] + rng.normal(0, 0.01)
        other = np.array([[a, -b, m[0, 2] + rng.normal(0, 0.01)], [b, a, m[1, 2] + rng.normal(0, 0.01)]])
        assert ((_apply(other, src) - dst) ** 2).sum() >= best - 1e-12


def test_chip_equals_dlibs_get_face_chip():
    dlib = pytest.importorskip("dlib")
    yy, xx = np.mgrid[0:300, 0:400].astype(np.float64)
    img = np.stack([127 + 100 * np.sin(xx / 23.0) * np.cos(yy / 31.0), 127 + 100 * np.sin((xx + yy) / 41.0),
                    xx * 255 / 400], axis=2).astype(np.uint8)  # smooth: a sub-pixel shift changes little
    # a face: dlib's mean face (68 points; 0..16 unused by dlib) under a known similarity in the image
    mean = np.zeros((68, 2))
    mean[17:] = np.stack([MEAN_X, MEAN_Y], 1)
    angle, scale, t = 0.3, 120.0, np.array([150.0, 90.0])
    rot = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    pts = mean @ rot.T + t
    parts = dlib.points([dlib.point(int(round(x)), int(round(y))) for x, y in pts])
    det = dlib.full_object_detection(dlib.rectangle(0, 0, 399, 299), parts)
    pts = np.round(pts)  # dlib stores whole-pixel parts
    ref = np.asarray(dlib.get_face_chip(img, det, size=150, padding=0.25))
    five = np.stack([pts[36:42].mean(0), pts[42:48].mean(0), pts[30], pts[48], pts[54]])
    ours = face_chip(img, five, 150, 0.25)
    assert ours.shape == ref.shape == (150, 150, 3)
    diff = np.abs(ours.astype(int) - ref.astype(int))
    assert diff.mean() < 2.0 and np.percentile(diff, 99) < 8, (diff.mean(), np.percentile(diff, 99))
    # the same transform: dlib's chip rectangle (centre, size) and angle against ours
    d = dlib.get_face_chip_details(det, size=150, padding=0.25)
    m = similarity_transform(chip_points(150, 0.25), five)  # chip -> image
    centre = _apply(m, np.array([[74.5, 74.5]]))[0]
    rc = d.rect.center()
    assert abs(centre[0] - rc.x) < 1.0 and abs(centre[1] - rc.y) < 1.0
    assert np.hypot(m[0, 0], m[1, 0]) * 150 == pytest.approx(d.rect.width(), rel=0.01)
    assert np.arctan2(m[1, 0], m[0, 0]) == pytest.approx(d.angle, abs=0.01)

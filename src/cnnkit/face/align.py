"""Face chips: a similarity transform (rotation, uniform scale, shift) from 5 landmarks to a square chip.

The chip is the one dlib's face recognition ResNet expects (`dlib.get_face_chip(img, shape, 150, 0.25)`):
the face's landmarks land on dlib's mean face shape, scaled into a `size` square with `padding` (a fraction
of the face's width) added on every side. MTCNN gives eye centres, the nose tip and the mouth corners; their
places on the mean face are the means of dlib's 68-point template's eye contours, its nose tip (30) and its
mouth corners (48, 54), so a chip from MTCNN's 5 points matches dlib's chip of the same face.
"""

from __future__ import annotations

import numpy as np

# dlib's mean face (points 36-41 and 42-47: eye contours; 30: nose tip; 48, 54: mouth corners), on [0, 1]
_LEFT_EYE = np.array([[0.121737, 0.216423], [0.187122, 0.178758], [0.265825, 0.179852],
                      [0.334606, 0.231733], [0.260918, 0.245099], [0.182743, 0.244077]])
_RIGHT_EYE = np.array([[0.645647, 0.231733], [0.714428, 0.179852], [0.793132, 0.178758],
                       [0.858516, 0.216423], [0.79751, 0.244077], [0.719335, 0.245099]])
MEAN_FACE_5 = np.array([
    _LEFT_EYE.mean(0),  # the eye on the image's left (the person's right)
    _RIGHT_EYE.mean(0),
    [0.490127, 0.515625],  # nose tip
    [0.254149, 0.780233],  # mouth corner, image left
    [0.726104, 0.780233],  # mouth corner, image right
])


def chip_points(size: int = 150, padding: float = 0.25) -> np.ndarray:
    """Where the 5 landmarks go in a `size` chip with `padding`: (5, 2) xy pixels (dlib's formula)."""
    return (padding + MEAN_FACE_5) / (2 * padding + 1) * size


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The least-squares similarity transform taking points `src` to `dst` (Umeyama 1991, no reflection).

    Args:
        src, dst: (N, 2) points, N >= 2.

    Returns:
        (2, 3) matrix M with dst ~= M[:, :2] @ src + M[:, 2].
    """
    src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s, d = src - mu_s, dst - mu_d
    cov = d.T @ s / len(src)
    u, sig, vt = np.linalg.svd(cov)
    sign = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[1, 1] = -1
    rot = u @ sign @ vt
    scale = np.trace(np.diag(sig) @ sign) / s.var(0).sum()
    m = np.zeros((2, 3))
    m[:, :2] = scale * rot
    m[:, 2] = mu_d - m[:, :2] @ mu_s
    return m


def face_chip(image: np.ndarray, landmarks: np.ndarray, size: int = 150, padding: float = 0.25) -> np.ndarray:
    """The aligned face chip of one face.

    Args:
        image: (H, W, C) uint8.
        landmarks: (5, 2) xy pixels in MTCNN's order (eyes, nose, mouth corners; image left first).
        size: side of the chip.
        padding: margin around the mean face, as a fraction of its size (dlib's 0.25 for the face ResNet).

    Returns:
        (size, size, C) uint8, bilinear; when the face is much larger than the chip the image is first
        shrunk by area averaging (as dlib's pyramid does), so the chip is not aliased.
    """
    import cv2

    m = similarity_transform(chip_points(size, padding), landmarks)  # chip -> image
    scale = float(np.sqrt(abs(np.linalg.det(m[:, :2]))))  # image pixels per chip pixel
    img = np.ascontiguousarray(image)
    if scale > 2.0:
        f = 2.0 / scale  # shrink so a chip pixel covers about 2 image pixels, then bilinear
        h, w = img.shape[:2]
        nh, nw = max(1, round(h * f)), max(1, round(w * f))
        img = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_AREA)
        # pixel centres: x_small = (x + 0.5) * nw / w - 0.5
        fx, fy = nw / w, nh / h
        m = np.array([[fx, 0, 0.5 * fx - 0.5], [0, fy, 0.5 * fy - 0.5]]) @ np.vstack([m, [0, 0, 1]])
    out = cv2.warpAffine(img, m, (size, size), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                         borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return out.reshape(size, size, -1) if out.ndim == 2 else out

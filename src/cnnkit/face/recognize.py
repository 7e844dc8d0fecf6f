"""Recognition: who is this? The nearest enrolled identity when within the threshold, else "unknown".

Also the photo-to-embedding pipeline every command shares: detect faces (MTCNN), pick the one face the caller
expects (or the largest, or all), align each to a chip (5 landmarks, similarity transform), embed the chips.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cnnkit.errors import InputError
from cnnkit.face.database import FaceDatabase

UNKNOWN = "unknown"


@dataclass
class Recognition:
    """The answer to "who is this?"."""

    identity: str  # the enrolled name, or "unknown"
    nearest: str | None  # the nearest enrolled identity, even when too far
    distance: float  # to the nearest enrolled embedding (inf when the database is empty)
    threshold: float

    def describe(self) -> str:
        if self.nearest is None:
            return f"{UNKNOWN}: the database is empty (threshold {self.threshold:.4f})"
        if self.identity == UNKNOWN:
            return (f"{UNKNOWN}: nearest is {self.nearest} at distance {self.distance:.4f} > threshold "
                    f"{self.threshold:.4f}")
        return f"{self.identity}: distance {self.distance:.4f} <= threshold {self.threshold:.4f}"

    def to_json(self) -> dict:
        return {"identity": self.identity, "nearest": self.nearest,
                "distance": None if not np.isfinite(self.distance) else round(self.distance, 6),
                "threshold": self.threshold}


def identify(db: FaceDatabase, embeddings: np.ndarray, tau: float) -> list[Recognition]:
    """Recognition of each embedding (Q, D) against the database (exact nearest neighbour)."""
    out = []
    for m in db.search(np.atleast_2d(embeddings)):
        if m is None:
            out.append(Recognition(UNKNOWN, None, float("inf"), float(tau)))
        else:
            out.append(Recognition(m.identity if m.distance <= tau else UNKNOWN, m.identity, m.distance, float(tau)))
    return out


def identify_arrays(names: np.ndarray, enrolled: np.ndarray, queries: np.ndarray, tau: float) -> list[str]:
    """The same decision on in-memory arrays (experiments): the nearest name within tau, else "unknown"."""
    from cnnkit.face.database import nearest_rows

    d2, idx = nearest_rows(np.asarray(queries, np.float32), np.asarray(enrolled, np.float32))
    return [str(names[i]) if np.sqrt(max(d, 0)) <= tau else UNKNOWN for d, i in zip(d2, idx, strict=True)]


@dataclass
class FoundFace:
    """One face of a photo: its box, score, landmarks, aligned chip and embedding."""

    box: np.ndarray
    score: float
    landmarks: np.ndarray
    chip: np.ndarray
    embedding: np.ndarray


class FacePipeline:
    """Photos -> faces -> chips -> embeddings.

    Args:
        encoder: a `cnnkit.face.encoder` encoder (chip_size, padding, embed_chips).
        detector: an MTCNN (default: the registry's networks).
    """

    def __init__(self, encoder, detector=None):
        from cnnkit.face.mtcnn import MTCNN

        self.encoder = encoder
        self.detector = detector or MTCNN()

    def faces(self, image: np.ndarray, *, name: str = "the image", one: bool = False,
              largest: bool = False) -> list[FoundFace]:
        """The faces of `image`, embedded.

        Args:
            name: how messages call the image (its path).
            one: exactly one face is expected: none raises, several raise unless `largest`.
            largest: keep only the largest face.

        Raises:
            InputError: no face (when `one`), or several faces when one is expected without `largest`.
        """
        from cnnkit.face.align import face_chip

        image = np.asarray(image)
        if image.ndim == 2 or image.shape[-1] == 1:  # grey: the encoders take RGB chips
            image = np.repeat(image.reshape(*image.shape[:2], 1), 3, axis=2)
        image = np.ascontiguousarray(image[..., :3])
        det = self.detector.detect(image)
        if one and len(det) == 0:
            raise InputError(f"{name}: no face found (MTCNN, faces of 20+ pixels); use a photo with a visible "
                             "face, or an aligned chip with --aligned")
        keep = list(range(len(det)))
        if len(det) > 1 and (one or largest):
            if not largest:
                raise InputError(f"{name}: {len(det)} faces found where one is expected; crop the photo to one face "
                                 "or pass --largest to use the largest")
            keep = [det.largest()]
        chips = [face_chip(image, det.landmarks[i], self.encoder.chip_size, self.encoder.padding) for i in keep]
        emb = self.encoder.embed_chips(chips)
        return [FoundFace(det.boxes[i], float(det.scores[i]), det.landmarks[i], c, e)
                for i, c, e in zip(keep, chips, emb, strict=True)]

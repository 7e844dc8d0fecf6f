"""Verification: is this the claimed person? A distance under a threshold, with both shown.

    d(x1, x2) = ||f(x1) - f(x2)||,   verified  <=>  d <= tau

Against an enrolment database the distance is the smallest over the claimed identity's enrolled images.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cnnkit.face.database import FaceDatabase


@dataclass
class Verdict:
    """The answer to "is this `identity`?": the distance, the threshold, and whether distance <= threshold."""

    identity: str
    distance: float
    threshold: float

    @property
    def verified(self) -> bool:
        return bool(self.distance <= self.threshold)

    def describe(self) -> str:
        word = "verified" if self.verified else "NOT verified"
        rel = "<=" if self.verified else ">"
        return f"{word} as {self.identity}: distance {self.distance:.4f} {rel} threshold {self.threshold:.4f}"

    def to_json(self) -> dict:
        return {"identity": self.identity, "verified": self.verified, "distance": round(self.distance, 6),
                "threshold": self.threshold}


def distance(a: np.ndarray, b: np.ndarray) -> float:
    """Euclidean distance of two embeddings."""
    return float(np.linalg.norm(np.asarray(a, np.float64) - np.asarray(b, np.float64)))


def verify_pair(a: np.ndarray, b: np.ndarray, tau: float, identity: str = "the other image") -> Verdict:
    """Verdict on two embeddings."""
    return Verdict(identity, distance(a, b), float(tau))


def verify_against(db: FaceDatabase, identity: str, embedding: np.ndarray, tau: float) -> Verdict:
    """Verdict of `embedding` against the enrolled images of `identity` (the nearest of them)."""
    enrolled = db.embeddings_of(identity)  # UnknownNameError for a name that is not enrolled
    d = np.linalg.norm(enrolled.astype(np.float64) - np.asarray(embedding, np.float64)[None], axis=1)
    return Verdict(identity, float(d.min()), float(tau))

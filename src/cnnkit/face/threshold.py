"""Choosing the verification threshold from labelled pairs: ROC, EER, TAR at a FAR, and LFW's 10 folds.

A pair is accepted ("same person") when its distance is at most the threshold tau. On pairs with known
answers, every tau gives a true accept rate (TAR: same-person pairs accepted) and a false accept rate (FAR:
different-person pairs accepted). The ROC curve is TAR against FAR over all tau; the equal error rate (EER)
is where FAR = 1 - TAR; "TAR at FAR 1e-3" is what a system admitting one stranger in a thousand accepts.
LFW's protocol: ten folds of pairs; tau is chosen for the best accuracy on nine and scored on the tenth.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cnnkit.errors import FileFormatError, MissingFileError


@dataclass
class Roc:
    """ROC points, one per distinct threshold, ascending: tau[i] accepts distances <= tau[i]."""

    tau: np.ndarray  # (T,)
    tar: np.ndarray  # (T,) true accept rate
    far: np.ndarray  # (T,) false accept rate


def roc(distances: np.ndarray, same: np.ndarray) -> Roc:
    """ROC of distance-threshold verification.

    Args:
        distances: (N,) distance of each pair.
        same: (N,) bool, True for same-identity pairs.

    Returns:
        Roc with a first point that accepts nothing (tau just below the smallest distance).
    """
    d = np.asarray(distances, np.float64)
    same = np.asarray(same, bool)
    n_pos, n_neg = max(int(same.sum()), 1), max(int((~same).sum()), 1)
    order = np.argsort(d, kind="stable")
    d, s = d[order], same[order]
    tp, fp = np.cumsum(s), np.cumsum(~s)
    last = np.r_[d[1:] != d[:-1], True]  # ties: one point after the last of equal distances
    tau = np.r_[np.nextafter(d[0], -np.inf) if len(d) else 0.0, d[last]]
    return Roc(tau, np.r_[0.0, tp[last] / n_pos], np.r_[0.0, fp[last] / n_neg])


def eer(r: Roc) -> tuple[float, float]:
    """Equal error rate and its threshold: where FAR meets the false reject rate 1 - TAR (interpolated)."""
    frr = 1 - r.tar
    diff = r.far - frr  # rises from -1 to >= 0
    k = int(np.argmax(diff >= 0))
    if k == 0:
        return float(r.far[0]), float(r.tau[0])
    # linear interpolation between points k-1 and k
    t = diff[k - 1] / (diff[k - 1] - diff[k])
    rate = r.far[k - 1] + t * (r.far[k] - r.far[k - 1])
    return float(rate), float(r.tau[k - 1] + t * (r.tau[k] - r.tau[k - 1]))


def tar_at_far(r: Roc, far: float) -> tuple[float, float]:
    """Best TAR with FAR at most `far`, and the largest threshold that gives it."""
    ok = np.flatnonzero(r.far <= far)
    k = ok[-1]  # FAR rises with tau, so the last allowed point has the highest TAR
    return float(r.tar[k]), float(r.tau[k])


def best_threshold(distances: np.ndarray, same: np.ndarray) -> tuple[float, float]:
    """The threshold of highest accuracy on these pairs, and that accuracy (ties: the midpoint of the best run)."""
    r = roc(distances, same)
    n_pos, n_neg = int(np.sum(same)), int(np.sum(~np.asarray(same, bool)))
    acc = (r.tar * n_pos + (1 - r.far) * n_neg) / max(n_pos + n_neg, 1)
    k = int(np.argmax(acc))
    # the midpoint between this distance and the next one generalises better than the distance itself
    tau = r.tau[k]
    if 0 < k < len(r.tau) - 1 and r.tau[k] < 0.5 * (r.tau[k] + r.tau[k + 1]) < r.tau[k + 1]:
        tau = 0.5 * (r.tau[k] + r.tau[k + 1])
    return float(tau), float(acc[k])


def lfw_folds(distances: np.ndarray, same: np.ndarray, fold: np.ndarray) -> dict:
    """LFW's protocol: for each fold, tau chosen on the other folds, accuracy on it.

    Args:
        distances, same: (N,) per pair.
        fold: (N,) fold number of each pair (LFW: 10 folds of 600 pairs).

    Returns:
        {"accuracy": mean, "std": standard deviation over folds, "folds": [{"tau", "accuracy"}...]}.
    """
    distances, same, fold = np.asarray(distances, float), np.asarray(same, bool), np.asarray(fold)
    folds = []
    for f in np.unique(fold):
        train, test = fold != f, fold == f
        tau, _ = best_threshold(distances[train], same[train])
        acc = float(np.mean((distances[test] <= tau) == same[test]))
        folds.append({"fold": int(f), "tau": tau, "accuracy": acc})
    accs = np.array([f["accuracy"] for f in folds])
    return {"accuracy": float(accs.mean()), "std": float(accs.std()), "folds": folds}


@dataclass
class Pair:
    """One line of a pairs file: two images, whether they show one person, and the fold it belongs to."""

    first: str
    second: str
    same: bool
    fold: int


def read_pairs(path: str | Path, root: str | Path | None = None, ext: str = ".jpg") -> list[Pair]:
    """Read LFW's pairs.txt layout.

    The first line is "folds pairs_per_class" (LFW: "10 300"); then, per fold, `pairs_per_class` matched
    lines "name n1 n2" and as many mismatched lines "name1 n1 name2 n2". Image k of a name is
    ROOT/name/name_%04d.jpg. A file without the header line is read as one fold of mixed lines.

    Args:
        path: the pairs file.
        root: folder of the images (default: the pairs file's folder).
        ext: image file extension.

    Raises:
        MissingFileError: no such file. FileFormatError: a line that is neither layout (its number named).
    """
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"pairs file not found: {path}")
    root = Path(root) if root is not None else path.parent
    lines = [ln.split() for ln in path.read_text().splitlines() if ln.strip()]
    per_fold = None
    start = 0
    if lines and len(lines[0]) == 2 and all(t.isdigit() for t in lines[0]):
        per_fold = 2 * int(lines[0][1])
        start = 1

    def image(name: str, k: str) -> str:
        return str(root / name / f"{name}_{int(k):04d}{ext}")

    pairs = []
    for n, parts in enumerate(lines[start:]):
        fold = n // per_fold if per_fold else 0
        try:
            if len(parts) == 3:
                pairs.append(Pair(image(parts[0], parts[1]), image(parts[0], parts[2]), True, fold))
            elif len(parts) == 4:
                pairs.append(Pair(image(parts[0], parts[1]), image(parts[2], parts[3]), False, fold))
            else:
                raise ValueError
        except ValueError:
            raise FileFormatError(f"{path}, line {n + start + 1}: expected 'name n1 n2' or 'name1 n1 name2 n2', "
                                  f"got {' '.join(parts)!r}") from None
    return pairs


def report(distances: np.ndarray, same: np.ndarray) -> dict:
    """The numbers a user needs to choose tau: EER and its tau, TAR at FAR 1e-2 and 1e-3, best accuracy."""
    r = roc(distances, same)
    e, e_tau = eer(r)
    out = {"pairs": int(len(distances)), "same": int(np.sum(same)), "eer": e, "eer_tau": e_tau}
    for far in (1e-2, 1e-3):
        tar, tau = tar_at_far(r, far)
        out[f"tar_at_far_{far:g}"] = tar
        out[f"tau_at_far_{far:g}"] = tau
    out["best_tau"], out["best_accuracy"] = best_threshold(distances, same)
    return out

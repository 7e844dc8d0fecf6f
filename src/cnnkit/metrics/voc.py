"""Pascal VOC average precision at IoU 0.5, all-point interpolation (VOC 2010 and later).

Per class, detections of every image are sorted by score; each takes the ground-truth box it overlaps most
(IoU > 0.5, as the devkit's `ovmax > ovthresh`): the first detection to take a box is a true positive, later
ones are duplicates (false positives); a detection on a "difficult" box counts as neither. AP is the area
under the precision-recall curve after making precision monotone (the best precision at this recall or
higher), summed at every point where recall changes. Coordinates are continuous (no +1 pixel as in the 2007
devkit), the same convention as the rest of cnnkit. NumPy only.
"""

from __future__ import annotations

import numpy as np

from cnnkit.errors import InputError

__all__ = ["evaluate_voc", "voc_ap"]


def voc_ap(recall: np.ndarray, precision: np.ndarray) -> float:
    """All-point AP: area under the monotone envelope of precision over recall.

    Args:
        recall: float[n] non-decreasing recall after each detection (score order).
        precision: float[n] precision after each detection.

    Returns:
        AP in [0, 1].
    """
    mrec = np.concatenate([[0.0], np.asarray(recall, dtype=np.float64), [1.0]])
    mpre = np.concatenate([[0.0], np.asarray(precision, dtype=np.float64), [0.0]])
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    steps = np.flatnonzero(mrec[1:] != mrec[:-1])
    return float(np.sum((mrec[steps + 1] - mrec[steps]) * mpre[steps + 1]))


def _iou_xyxy(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    wh = np.clip(rb - lt, 0, None)
    inter = wh[..., 0] * wh[..., 1]
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.nan_to_num(inter / (area_a[:, None] + area_b[None, :] - inter))


def evaluate_voc(predictions: list[dict], targets: list[dict], *, iou_threshold: float = 0.5,
                 class_ids: list[int] | None = None) -> dict:
    """VOC AP per class and its mean over classes with ground truth.

    Args:
        predictions: per image {"boxes": [N, 4] xyxy, "scores": [N], "labels": [N]} (NumPy or CPU tensors).
        targets: per image {"boxes": [M, 4] xyxy, "labels": [M]}, optional "difficult": [M] bool.
        iou_threshold: a detection matches with IoU strictly above this.
        class_ids: classes to evaluate; default the labels found in the targets.

    Returns:
        {"map50": mean AP over classes with (non-difficult) ground truth, "ap_per_class": {class: AP},
         "pr_curves": {class: (recall float[n], precision float[n])}}.
    """
    if len(predictions) != len(targets):
        raise InputError(f"{len(predictions)} predictions but {len(targets)} targets: give one of each per image")
    gts = [(np.asarray(t["boxes"], dtype=np.float64).reshape(-1, 4), np.asarray(t["labels"]).reshape(-1),
            np.asarray(t.get("difficult", np.zeros(len(t["labels"]))), dtype=bool).reshape(-1)) for t in targets]
    dts = [(np.asarray(p["boxes"], dtype=np.float64).reshape(-1, 4), np.asarray(p["scores"], dtype=np.float64)
            .reshape(-1), np.asarray(p["labels"]).reshape(-1)) for p in predictions]
    if class_ids is None:
        class_ids = sorted(set(np.concatenate([g[1] for g in gts]).tolist()) if gts else set())
    ap, curves = {}, {}
    for cls in class_ids:
        npos = sum(int((~d[lab == cls]).sum()) for _, lab, d in gts)
        img, score, best, best_diff, gt_key = [], [], [], [], []
        offset = 0
        for n, ((gb, gl, gd), (db, ds, dl)) in enumerate(zip(gts, dts, strict=True)):
            gsel, dsel = gl == cls, dl == cls
            g, diff, d = gb[gsel], gd[gsel], db[dsel]
            img.append(np.full(len(d), n))
            score.append(ds[dsel])
            if len(g) and len(d):
                iou = _iou_xyxy(d, g)
                j = iou.argmax(axis=1)
                ok = iou[np.arange(len(d)), j] > iou_threshold
                best.append(ok)
                best_diff.append(diff[j] & ok)
                gt_key.append(np.where(ok, offset + j, -1))
            else:
                best.append(np.zeros(len(d), dtype=bool))
                best_diff.append(np.zeros(len(d), dtype=bool))
                gt_key.append(np.full(len(d), -1))
            offset += len(g)
        score, best = np.concatenate(score), np.concatenate(best)
        best_diff, gt_key = np.concatenate(best_diff), np.concatenate(gt_key)
        order = np.argsort(-score, kind="stable")
        best, best_diff, gt_key = best[order], best_diff[order], gt_key[order]
        # the first detection (in score order) to reach a ground-truth box takes it; later ones are duplicates
        first = np.zeros(len(order), dtype=bool)
        if best.any():
            idx = np.flatnonzero(best)
            _, first_pos = np.unique(gt_key[idx], return_index=True)
            first[idx[first_pos]] = True
        tp = (first & ~best_diff).astype(float)
        fp = (~best).astype(float) + (best & ~first & ~best_diff)
        counted = ~best_diff  # a detection on a difficult box is neither
        tp, fp = np.cumsum(tp[counted]), np.cumsum(fp[counted])
        if npos == 0:
            ap[cls] = -1.0
            curves[cls] = (np.zeros(0), np.zeros(0))
            continue
        rec = tp / npos
        prec = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
        ap[cls] = voc_ap(rec, prec)
        curves[cls] = (rec, prec)
    valid = [v for v in ap.values() if v >= 0]
    return {"map50": float(np.mean(valid)) if valid else -1.0, "ap_per_class": ap, "pr_curves": curves}

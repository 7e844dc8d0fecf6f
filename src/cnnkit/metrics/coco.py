"""COCO mean average precision, exactly as pycocotools' COCOeval defines it, vectorised in NumPy.

The definition (bbox or segm): for every category, image and area range, detections (best `max_dets[-1]`
per image and category, by score) are matched greedily in score order to the unmatched ground-truth box of
highest IoU >= t, for each of the ten thresholds t = 0.50:0.05:0.95. Crowd regions (iscrowd=1) are never
counted: their IoU is intersection / detection area, they can absorb any number of detections, and a detection
matched to one (or to a box outside the area range) is ignored, as is an unmatched detection outside the area
range. Precision is made monotone (each value is the best precision at that recall or higher) and read at 101
recall points 0:0.01:1; AP averages those over thresholds and categories that have ground truth (-1 marks
"no ground truth here"). Area ranges: all, small (< 32^2), medium (32^2..96^2), large (> 96^2), measured with
the annotation's `area` field; maxDets 1, 10, 100.

What is vectorised: IoUs of every (image, category) group at once, padded in buckets of similar size; the
greedy matching steps through detections that reach IoU 0.5 with something (the others can match nothing),
with all groups, area ranges and thresholds in one array operation per step; accumulation sorts all
detections once and works on segments per category.

This module imports NumPy only (no torch), so `cnnkit coco-eval` starts in a fraction of a second. segm IoUs
come from pycocotools' mask code (RLE), imported only when asked for.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from cnnkit.errors import InputError

__all__ = [
    "AREA_LABELS",
    "AREA_RANGES",
    "COCO_STAT_NAMES",
    "IOU_THRESHOLDS",
    "MAX_DETS",
    "RECALL_THRESHOLDS",
    "COCOEvalResult",
    "evaluate_coco",
    "evaluate_detections",
]

# the same expressions as pycocotools' Params, so every float is bit-identical
IOU_THRESHOLDS = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True)
RECALL_THRESHOLDS = np.linspace(0.0, 1.00, int(np.round((1.00 - 0.0) / 0.01)) + 1, endpoint=True)
AREA_RANGES = ((0, 1e5**2), (0, 32**2), (32**2, 96**2), (96**2, 1e5**2))
AREA_LABELS = ("all", "small", "medium", "large")
MAX_DETS = (1, 10, 100)
COCO_STAT_NAMES = ("map", "map50", "map75", "map_small", "map_medium", "map_large",
                   "mar_1", "mar_10", "mar_100", "mar_small", "mar_medium", "mar_large")

# (ap, iou threshold, area, max dets index) of each of the 12 numbers COCOeval.summarize() prints
_SUMMARY = ((1, None, "all", 2), (1, 0.5, "all", 2), (1, 0.75, "all", 2), (1, None, "small", 2),
            (1, None, "medium", 2), (1, None, "large", 2), (0, None, "all", 0), (0, None, "all", 1),
            (0, None, "all", 2), (0, None, "small", 2), (0, None, "medium", 2), (0, None, "large", 2))


@dataclass
class COCOEvalResult:
    """What COCOeval's `accumulate` and `summarize` produce, with names users know.

    Attributes:
        precision: float64[T, R, K, A, M]: interpolated precision per IoU threshold, recall point, category,
            area range and max-detections setting; -1 where the category has no ground truth.
        recall: float64[T, K, A, M]: recall reached; -1 likewise.
        stats: float64[12], the numbers `COCOeval.summarize()` prints, in its order.
        cat_ids: the K category ids, increasing.
        iou_type: "bbox" or "segm".
        max_dets: the M max-detections settings.
    """

    precision: np.ndarray
    recall: np.ndarray
    stats: np.ndarray
    cat_ids: list
    iou_type: str = "bbox"
    max_dets: tuple = MAX_DETS
    cat_names: dict = field(default_factory=dict)

    def summary(self) -> dict[str, float]:
        """The 12 numbers as {"map": ..., "map50": ..., ..., "mar_large": ...}."""
        return {name: float(v) for name, v in zip(COCO_STAT_NAMES, self.stats, strict=True)}

    def summary_lines(self) -> list[str]:
        """The 12 lines `COCOeval.summarize()` prints, word for word."""
        lines = []
        for (ap, thr, area, m), value in zip(_SUMMARY, self.stats, strict=True):
            title = "Average Precision" if ap == 1 else "Average Recall"
            kind = "(AP)" if ap == 1 else "(AR)"
            iou = f"{IOU_THRESHOLDS[0]:0.2f}:{IOU_THRESHOLDS[-1]:0.2f}" if thr is None else f"{thr:0.2f}"
            lines.append(f" {title:<18} {kind} @[ IoU={iou:<9} | area={area:>6s} | maxDets={self.max_dets[m]:>3d} ]"
                         f" = {value:0.3f}")
        return lines

    def per_class_ap(self, iou_threshold: float | None = None) -> dict:
        """AP of each category id (area all, most detections): at one IoU threshold, or averaged over all ten.

        Categories without ground truth get -1.
        """
        s = self.precision[:, :, :, 0, -1]
        if iou_threshold is not None:
            s = s[_threshold_index(iou_threshold)][None]
        out = {}
        for k, cat in enumerate(self.cat_ids):
            v = s[:, :, k]
            out[cat] = float(np.mean(v[v > -1])) if (v > -1).any() else -1.0
        return out

    def pr_curves(self, iou_threshold: float = 0.5) -> dict:
        """Precision at the 101 recall points for each category id (area all, most detections): {id: float[101]}.

        A category without ground truth maps to an array of -1.
        """
        s = self.precision[_threshold_index(iou_threshold), :, :, 0, -1]
        return {cat: s[:, k].copy() for k, cat in enumerate(self.cat_ids)}

    def to_dict(self) -> dict:
        """JSON-ready: the 12 named numbers, per-class AP (0.50:0.95 and 0.50), keyed by category name or id."""
        names = [str(self.cat_names.get(c, c)) for c in self.cat_ids]
        ap = self.per_class_ap()
        ap50 = self.per_class_ap(0.5)
        out = self.summary()
        out["per_class"] = {n: {"ap": ap[c], "ap50": ap50[c]} for n, c in zip(names, self.cat_ids, strict=True)}
        return out


def _threshold_index(iou_threshold: float) -> int:
    hits = np.where(np.isclose(IOU_THRESHOLDS, iou_threshold))[0]
    if not len(hits):
        raise InputError(f"IoU threshold {iou_threshold} is not one of COCO's 0.50, 0.55, ..., 0.95")
    return int(hits[0])


# --------------------------------------------------------------------------------------------- inputs


def evaluate_coco(gt: dict, results: list[dict], iou_type: str = "bbox") -> COCOEvalResult:
    """COCOeval on a COCO ground-truth dict and a results list, as `COCOeval(gt, gt.loadRes(results))`.

    Args:
        gt: the ground-truth JSON as a dict (`images`, `annotations`, `categories`).
        results: detections: dicts with `image_id`, `category_id`, `score` and `bbox` [x, y, w, h] (bbox), or
            `segmentation` as RLE (segm).
        iou_type: "bbox" or "segm".

    Returns:
        COCOEvalResult (stats, precision, recall, per-class AP and PR curves).

    Raises:
        InputError: a result names an image or category that the ground truth does not have, or a field
            is missing or malformed.
    """
    if iou_type not in ("bbox", "segm"):
        raise InputError(f"unknown iou type {iou_type!r}; use bbox or segm")
    if not isinstance(gt, dict) or not isinstance(gt.get("images"), list) or not isinstance(
            gt.get("annotations", []), list) or not isinstance(gt.get("categories", []), list):
        raise InputError("ground truth must be a COCO object with lists 'images', 'annotations', 'categories'")
    if not isinstance(results, list):
        raise InputError("results must be a list of detections (COCO results format)")
    try:
        img_ids = sorted({int(im["id"]) for im in gt["images"]})
        cat_ids = sorted({int(c["id"]) for c in gt.get("categories", [])})
        cat_names = {int(c["id"]): c.get("name", c["id"]) for c in gt.get("categories", [])}
    except (KeyError, TypeError, ValueError) as e:
        raise InputError(f"ground truth: every image and category needs an integer 'id' ({e!r})") from None
    img_index = {i: n for n, i in enumerate(img_ids)}
    cat_index = {c: n for n, c in enumerate(cat_ids)}
    anns = gt.get("annotations", [])
    try:
        g_img = np.array([a["image_id"] for a in anns], dtype=np.int64)
        g_cat = np.array([a["category_id"] for a in anns], dtype=np.int64)
        g_crowd = np.array([bool(a.get("iscrowd", 0)) for a in anns], dtype=bool)
        g_id = np.array([a.get("id", n + 1) for n, a in enumerate(anns)], dtype=np.int64)
        if iou_type == "bbox":
            g_box = _boxes([a["bbox"] for a in anns], "ground-truth")
            g_area = np.array([a["area"] if "area" in a else a["bbox"][2] * a["bbox"][3] for a in anns],
                              dtype=np.float64)
        else:
            g_area = np.array([a["area"] for a in anns], dtype=np.float64)
    except (KeyError, TypeError, ValueError) as e:
        raise InputError(f"ground-truth annotation is missing or has a malformed field: {e!r}") from None
    try:
        d_img = np.array([r["image_id"] for r in results], dtype=np.int64)
        d_cat = np.array([r["category_id"] for r in results], dtype=np.int64)
        d_score = np.array([r["score"] for r in results], dtype=np.float64)
        if iou_type == "bbox":
            d_box = _boxes([r["bbox"] for r in results], "result")
            d_area = d_box[:, 2] * d_box[:, 3]
    except (KeyError, TypeError, ValueError) as e:
        raise InputError(f"a result is missing or has a malformed field (image_id, category_id, score, "
                         f"{'bbox' if iou_type == 'bbox' else 'segmentation'}): {e!r}") from None
    _check_known("image", d_img, img_index)
    _check_known("category", d_cat, cat_index)
    g_keep = np.isin(g_img, img_ids) & np.isin(g_cat, cat_ids)  # pycocotools evaluates these only
    g_idx = np.flatnonzero(g_keep)
    gi = _lookup(g_img[g_keep], img_index)
    gc = _lookup(g_cat[g_keep], cat_index)
    di = _lookup(d_img, img_index)
    dc = _lookup(d_cat, cat_index)
    if iou_type == "bbox":
        gt_side = dict(img=gi, cat=gc, box=g_box[g_keep], area=g_area[g_keep], crowd=g_crowd[g_keep],
                       ids=g_id[g_keep])
        dt_side = dict(img=di, cat=dc, box=d_box, area=d_area, score=d_score)
        iou_fn = None
    else:
        g_rle, d_rle, d_area = _segm_inputs(gt, [anns[i] for i in g_idx], results)
        gt_side = dict(img=gi, cat=gc, box=None, area=g_area[g_keep], crowd=g_crowd[g_keep], ids=g_id[g_keep])
        dt_side = dict(img=di, cat=dc, box=None, area=d_area, score=d_score)
        iou_fn = _segm_iou_fn(g_rle, d_rle, g_crowd[g_keep])
    precision, recall = _evaluate(gt_side, dt_side, len(img_ids), len(cat_ids), MAX_DETS, iou_fn)
    return COCOEvalResult(precision, recall, _stats(precision, recall), cat_ids, iou_type, MAX_DETS, cat_names)


def _boxes(rows: list, what: str) -> np.ndarray:
    """float64 (N, 4) from a list of [x, y, w, h]; anything else is a malformed field, not a silent reshape."""
    arr = np.array(rows, dtype=np.float64)
    if len(rows) == 0:
        return arr.reshape(0, 4)
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise InputError(f"every {what} bbox must be [x, y, width, height]; got rows of shape {arr.shape[1:]}"
                         " (malformed field)")
    return arr


def _array(x, dtype) -> np.ndarray:
    """A NumPy array from a list, an array or a (CPU) tensor, without importing torch."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=dtype)


def _check_known(what: str, ids: np.ndarray, index: dict) -> None:
    if not len(ids):
        return
    unknown = np.setdiff1d(np.unique(ids), np.fromiter(index.keys(), dtype=np.int64, count=len(index)))
    if len(unknown):
        row = int(np.flatnonzero(ids == unknown[0])[0])
        raise InputError(f"result {row} refers to {what} id {int(unknown[0])}, which the ground truth does not have"
                         f" ({len(unknown)} unknown {what} id(s) in all); results must match the ground-truth file")


def _lookup(values: np.ndarray, index: dict) -> np.ndarray:
    keys = np.fromiter(index.keys(), dtype=np.int64, count=len(index))
    pos = np.fromiter(index.values(), dtype=np.int64, count=len(index))
    order = np.argsort(keys)
    return pos[order][np.searchsorted(keys[order], values)] if len(values) else np.zeros(0, dtype=np.int64)


def _segm_inputs(gt: dict, g_anns: list[dict], results: list[dict]):
    """RLEs of ground truth (polygons converted with the image size) and results, and result areas."""
    from pycocotools import mask as mask_utils  # imported here: only segm needs it

    sizes = {int(im["id"]): (int(im["height"]), int(im["width"])) for im in gt["images"] if "height" in im}
    try:
        g_rle = []
        for a in g_anns:
            h, w = sizes[int(a["image_id"])]
            seg = a["segmentation"]
            if isinstance(seg, list):
                g_rle.append(mask_utils.merge(mask_utils.frPyObjects(seg, h, w)))
            elif isinstance(seg["counts"], list):
                g_rle.append(mask_utils.frPyObjects(seg, h, w))
            else:
                g_rle.append(seg)
        d_rle = [r["segmentation"] for r in results]
        if results and results[0].get("bbox"):  # pycocotools' loadRes then takes the box area, even for segm
            d_area = np.array([float(r["bbox"][2]) * float(r["bbox"][3]) for r in results], dtype=np.float64)
        else:
            d_area = np.array([float(mask_utils.area(s)) for s in d_rle], dtype=np.float64)
    except (KeyError, TypeError, ValueError) as e:
        raise InputError(f"segm evaluation needs image height/width and RLE or polygon segmentations: {e!r}") from None
    return g_rle, d_rle, d_area


def _segm_iou_fn(g_rle: list, d_rle: list, g_crowd: np.ndarray):
    from pycocotools import mask as mask_utils

    def iou(d_idx: np.ndarray, g_idx: np.ndarray) -> np.ndarray:
        out = mask_utils.iou([d_rle[i] for i in d_idx], [g_rle[i] for i in g_idx], [int(g_crowd[i]) for i in g_idx])
        return np.asarray(out, dtype=np.float64).reshape(len(d_idx), len(g_idx))

    return iou


def evaluate_detections(predictions: list[dict], targets: list[dict], *, box_format: str = "xyxy",
                        class_ids: list[int] | None = None) -> COCOEvalResult:
    """COCO mAP of in-memory detections, one dict per image (NumPy arrays or CPU tensors).

    Args:
        predictions: per image {"boxes": [N, 4], "scores": [N], "labels": [N]}.
        targets: per image {"boxes": [M, 4], "labels": [M]}, optional "iscrowd": [M] (crowd regions) and
            "area": [M] (defaults to the box area; COCO files give the mask area).
        box_format: "xyxy" (pixels, cnnkit's convention) or "xywh" (COCO's).
        class_ids: categories to evaluate; default every label in the targets or predictions. A category with no
            ground truth gets AP -1 and does not count in the mean.

    Returns:
        COCOEvalResult, equal to pycocotools' on the same boxes written as COCO JSON.
    """
    if len(predictions) != len(targets):
        raise InputError(f"{len(predictions)} predictions but {len(targets)} targets: give one of each per image")
    if box_format not in ("xyxy", "xywh"):
        raise InputError(f"box_format must be 'xyxy' or 'xywh', got {box_format!r}")

    def arrays(items, with_scores):
        boxes, labels, scores, img, extra_crowd, extra_area = [], [], [], [], [], []
        for n, it in enumerate(items):
            b = _array(it["boxes"], np.float64).reshape(-1, 4)
            if box_format == "xyxy":
                b = np.concatenate([b[:, :2], b[:, 2:] - b[:, :2]], axis=1)
            lab = _array(it["labels"], np.int64).reshape(-1)
            if len(lab) != len(b):
                raise InputError(f"image {n}: {len(b)} boxes but {len(lab)} labels")
            boxes.append(b)
            labels.append(lab)
            img.append(np.full(len(b), n, dtype=np.int64))
            if with_scores:
                scores.append(_array(it["scores"], np.float64).reshape(-1))
            else:
                extra_crowd.append(_array(it.get("iscrowd", np.zeros(len(b))), bool).reshape(-1))
                area = it.get("area")
                extra_area.append(b[:, 2] * b[:, 3] if area is None else _array(area, np.float64).reshape(-1))
        cat = lambda xs, dt: np.concatenate(xs) if xs else np.zeros(0, dtype=dt)  # noqa: E731
        return (np.concatenate(boxes) if boxes else np.zeros((0, 4)), cat(labels, np.int64), cat(scores, np.float64),
                cat(img, np.int64), cat(extra_crowd, bool), cat(extra_area, np.float64))

    d_box, d_lab, d_score, d_img, _, _ = arrays(predictions, True)
    g_box, g_lab, _, g_img, g_crowd, g_area = arrays(targets, False)
    if class_ids is None:
        class_ids = sorted(set(np.unique(g_lab).tolist()) | set(np.unique(d_lab).tolist()))
    class_ids = sorted(int(c) for c in class_ids)
    index = {c: n for n, c in enumerate(class_ids)}
    gk = np.isin(g_lab, class_ids)
    dk = np.isin(d_lab, class_ids)
    gt_side = dict(img=g_img[gk], cat=_lookup(g_lab[gk], index), box=g_box[gk], area=g_area[gk], crowd=g_crowd[gk],
                   ids=np.arange(1, gk.sum() + 1, dtype=np.int64))
    dt_side = dict(img=d_img[dk], cat=_lookup(d_lab[dk], index), box=d_box[dk], area=d_box[dk, 2] * d_box[dk, 3],
                   score=d_score[dk])
    precision, recall = _evaluate(gt_side, dt_side, len(targets), len(class_ids), MAX_DETS, None)
    return COCOEvalResult(precision, recall, _stats(precision, recall), class_ids, "bbox", MAX_DETS)


# --------------------------------------------------------------------------------------------- core


def _bbox_iou(d: np.ndarray, g: np.ndarray, crowd: np.ndarray) -> np.ndarray:
    """pycocotools' bbIou, same float64 operations: d (..., D, 4) xywh, g (..., G, 4) xywh -> (..., D, G)."""
    dx, dy, dw, dh = (d[..., :, None, i] for i in range(4))
    gx, gy, gw, gh = (g[..., None, :, i] for i in range(4))
    w = np.minimum(dw + dx, gw + gx) - np.maximum(dx, gx)
    h = np.minimum(dh + dy, gh + gy) - np.maximum(dy, gy)
    inter = w * h
    da = dw * dh
    union = np.where(crowd[..., None, :], da, da + gw * gh - inter)
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = inter / union
    return np.where((w > 0) & (h > 0), iou, 0.0)


def _segments(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For sorted keys: (unique keys, start, end) of each run."""
    if not len(keys):
        z = np.zeros(0, dtype=np.int64)
        return z, z, z
    cut = np.flatnonzero(np.diff(keys)) + 1
    starts = np.concatenate([[0], cut])
    ends = np.concatenate([cut, [len(keys)]])
    return keys[starts], starts, ends


def _evaluate(gt: dict, dt: dict, n_img: int, n_cat: int, max_dets: tuple, iou_fn=None):
    """precision[T, R, K, A, M] and recall[T, K, A, M] as COCOeval.evaluate() + accumulate()."""
    T, R, A, M, K = len(IOU_THRESHOLDS), len(RECALL_THRESHOLDS), len(AREA_RANGES), len(max_dets), n_cat
    lo = np.array([a[0] for a in AREA_RANGES], dtype=np.float64)[:, None]
    hi = np.array([a[1] for a in AREA_RANGES], dtype=np.float64)[:, None]

    # detections: by (image, category) group, score descending, stable; the best max_dets[-1] of each group
    d_grp_all = dt["img"] * K + dt["cat"]
    nd0 = len(d_grp_all)
    d_order = np.lexsort((np.arange(nd0), -dt["score"], d_grp_all))
    grp_sorted = d_grp_all[d_order]
    _, run_start, run_end = _segments(grp_sorted)
    rank_all = np.arange(nd0) - np.repeat(run_start, run_end - run_start)
    top = rank_all < max_dets[-1]
    sel = d_order[top]  # index into the caller's detections of each kept one, in (group, score) order
    rank = rank_all[top]
    d_grp = grp_sorted[top]
    d_score, d_area, d_img, d_cat = dt["score"][sel], dt["area"][sel], dt["img"][sel], dt["cat"][sel]
    d_box = dt["box"][sel] if dt["box"] is not None else None
    d_src = sel
    nd = len(sel)

    # ground truth: by group, original order
    g_grp0 = gt["img"] * K + gt["cat"]
    g_order = np.argsort(g_grp0, kind="stable")
    g_grp = g_grp0[g_order]
    g_crowd = gt["crowd"][g_order]
    g_area = gt["area"][g_order]
    g_ids = gt["ids"][g_order]
    g_box = gt["box"][g_order] if gt["box"] is not None else None
    g_src = g_order
    g_ign = g_crowd[None, :] | (g_area[None, :] < lo) | (g_area[None, :] > hi)  # (A, G)

    # matched to a ground truth (whose id is not 0: pycocotools tests the stored id, so id 0 reads as unmatched)
    d_hit = np.zeros((A, T, nd), dtype=bool)
    d_mig = np.zeros((A, T, nd), dtype=bool)  # matched to an ignored ground truth
    g_keys, g_start, g_end = _segments(g_grp)
    d_keys, d_start, d_end = _segments(d_grp)
    both, gi, di = np.intersect1d(g_keys, d_keys, assume_unique=True, return_indices=True)
    if len(both):
        gcount = g_end[gi] - g_start[gi]
        bucket = np.ceil(np.log2(gcount)).astype(np.int64)  # groups with similar numbers of ground truths
        for b in np.unique(bucket):
            rows = np.flatnonzero(bucket == b)
            _match_groups(g_start[gi[rows]], g_end[gi[rows]], d_start[di[rows]], d_end[di[rows]], g_box, d_box,
                          g_crowd, g_ign, g_ids, d_hit, d_mig, iou_fn, g_src, d_src)

    d_out = (d_area[None, :] < lo) | (d_area[None, :] > hi)  # (A, D)
    d_ign = d_mig | (~d_hit & d_out[:, None, :])  # (A, T, D)

    # accumulate: every category's detections sorted by score (ties: image order, then rank in the image)
    npig = np.zeros((K, A), dtype=np.int64)
    for a in range(A):
        npig[:, a] = np.bincount(gt["cat"][g_order][~g_ign[a]], minlength=K)
    present = np.zeros(K, dtype=bool)  # a category with no ground truth and no detection stays -1
    present[gt["cat"]] = True
    present[d_cat] = True
    order = np.lexsort((rank, d_img, -d_score, d_cat))
    cats_sorted = d_cat[order]
    rank_sorted = rank[order]
    precision = -np.ones((T, R, K, A, M))
    recall = -np.ones((T, K, A, M))
    valid = present[:, None] & (npig > 0)  # (K, A)
    matched = d_hit[:, :, order]  # (A, T, D) in accumulation order
    counted = ~d_ign[:, :, order]
    tps_all, fps_all = matched & counted, ~matched & counted
    for m, max_det in enumerate(max_dets):
        keep = rank_sorted < max_det
        every = bool(keep.all())
        c = cats_sorted if every else cats_sorted[keep]
        for a in range(A):
            tps = tps_all[a] if every else tps_all[a][:, keep]
            fps = fps_all[a] if every else fps_all[a][:, keep]
            _accumulate(c, tps, fps, npig[:, a], valid[:, a], precision[:, :, :, a, m], recall[:, :, a, m])
    return precision, recall


def _match_groups(gs, ge, ds, de, g_box, d_box, g_crowd, g_ign, g_ids, d_hit, d_mig, iou_fn, g_src, d_src):
    """Greedy COCO matching of a bucket of (image, category) groups, all area ranges and thresholds at once."""
    n = len(gs)
    gn, dn = ge - gs, de - ds
    gm, dm = int(gn.max()), int(dn.max())
    # ground truths laid out last-first, so that argmax (first maximum) picks the last of equal IoUs as
    # pycocotools' loop does (it keeps a later ground truth whose IoU is >= the best so far)
    g_idx = ge[:, None] - 1 - np.arange(gm)[None, :]
    g_ok = np.arange(gm)[None, :] < gn[:, None]
    g_idx = np.where(g_ok, g_idx, gs[:, None])  # padding points at a real row; masked below
    d_idx = ds[:, None] + np.arange(dm)[None, :]
    d_ok = np.arange(dm)[None, :] < dn[:, None]
    d_idx = np.where(d_ok, d_idx, ds[:, None])
    crowd = g_crowd[g_idx] & g_ok  # (n, gm)
    if iou_fn is None:
        ious = _bbox_iou(d_box[d_idx], g_box[g_idx], crowd)  # (n, dm, gm)
    else:
        ious = np.zeros((n, dm, gm))
        for r in range(n):
            ious[r, :dn[r], :gn[r]] = iou_fn(d_src[ds[r]:de[r]], g_src[gs[r]:ge[r]][::-1])
    ious = np.where(d_ok[:, :, None] & g_ok[:, None, :], ious, -1.0)
    thr = np.minimum(IOU_THRESHOLDS, 1 - 1e-10)
    # only detections reaching the lowest threshold with some ground truth can match; keep their order
    cand = (ious >= thr[0]).any(axis=2)  # (n, dm)
    nc = cand.sum(axis=1)
    dc = int(nc.max())
    if dc == 0:
        return
    by = np.argsort(-nc, kind="stable")  # groups with most candidates first: a shrinking prefix is active
    cand, nc = cand[by], nc[by]
    ious, d_idx, g_idx, g_ok, crowd = ious[by], d_idx[by], g_idx[by], g_ok[by], crowd[by]
    slot = np.cumsum(cand, axis=1) - 1
    r_, c_ = np.nonzero(cand)
    cious = np.full((n, dc, gm), -1.0)
    cious[r_, slot[r_, c_]] = ious[r_, c_]
    cdet = np.zeros((n, dc), dtype=np.int64)
    cdet[r_, slot[r_, c_]] = d_idx[r_, c_]
    ign = g_ign[:, g_idx].transpose(1, 0, 2) & g_ok[:, None, :]  # (n, A, gm)
    ign = ign[:, :, None, :]  # (n, A, 1, gm)
    not_ign = ~ign & g_ok[:, None, None, :]
    ids = g_ids[g_idx]  # (n, gm)
    A, T = g_ign.shape[0], len(thr)
    matched = np.zeros((n, A, T, gm), dtype=bool)
    crowd4 = crowd[:, None, None, :]
    thr4 = thr[None, None, :, None]
    out_hit = np.zeros((n, A, T, dc), dtype=bool)
    out_ig = np.zeros((n, A, T, dc), dtype=bool)
    assert matched.flags.c_contiguous  # matched[:k].reshape(-1) below must be a view
    for j in range(dc):
        k = int((nc > j).sum())  # nc is decreasing: the first k groups have more than j candidates
        iou_j = cious[:k, j, None, None, :]  # (k, 1, 1, gm)
        ok = (iou_j >= thr4) & (~matched[:k] | crowd4[:k])  # (k, A, T, gm)
        # prefer a non-ignored ground truth; among equal IoUs the last one (first in this layout) wins
        v_non = np.where(ok & not_ign[:k], iou_j, -np.inf)
        v_ig = np.where(ok & ign[:k], iou_j, -np.inf)
        m_non = np.argmax(v_non, axis=-1)
        m_ig = np.argmax(v_ig, axis=-1)
        base = np.arange(k * A * T).reshape(k, A, T) * gm
        has_non = v_non.reshape(-1)[base + m_non] > -np.inf
        has_ig = v_ig.reshape(-1)[base + m_ig] > -np.inf
        m = np.where(has_non, m_non, m_ig)
        has = has_non | has_ig
        out_hit[:k, :, :, j] = has & (ids[np.arange(k)[:, None, None], m] != 0)
        out_ig[:k, :, :, j] = has & ~has_non
        matched[:k].reshape(-1)[(base + m)[has]] = True
    live = np.arange(dc)[None, :] < nc[:, None]  # (n, dc)
    rows, cols = np.nonzero(live)
    dets = cdet[rows, cols]
    d_hit[:, :, dets] = out_hit[rows, :, :, cols].transpose(1, 2, 0)
    d_mig[:, :, dets] = out_ig[rows, :, :, cols].transpose(1, 2, 0)


def _accumulate(c, tps, fps, npig, valid, precision, recall) -> None:
    """Fill precision[T, R, K] and recall[T, K] for one area range and max-dets setting.

    c: int[n] category of each detection, sorted (segments); tps, fps: bool[T, n] in score order per category.

    pycocotools computes precision and recall after every detection, makes precision monotone from the right
    and reads it where recall first reaches each recall point. Recall only grows at a true positive and
    precision only falls between two, so everything is computed at the true positives alone: the precision
    read at recall point r is the best precision from the need(r)-th true positive of the category onwards,
    need(r) being the fewest true positives whose recall reaches r (integers: rounding cannot move it).
    """
    K = len(npig)
    T, n = tps.shape
    ks = np.flatnonzero(valid)
    if not len(ks):
        return
    if n == 0:  # ground truth but no detection: recall and precision 0
        recall[:, ks] = 0
        precision[:, :, ks] = 0
        return
    seg_start = np.searchsorted(c, np.arange(K), side="left")
    t_idx, pos = np.nonzero(tps)  # every true positive, by threshold, then category, then score
    cat = c[pos]
    run = t_idx * K + cat  # (threshold, category) run of each true positive
    count = np.bincount(run, minlength=T * K)  # true positives per (t, k)
    offset = np.cumsum(count) - count
    ntp = np.arange(len(pos)) - offset[run] + 1  # true positives so far within the category, as a count
    fp_c = np.cumsum(fps, axis=1, dtype=np.int64)
    fp_before = np.where(seg_start > 0, fp_c[:, np.maximum(seg_start - 1, 0)], 0)  # (T, K)
    nfp = fp_c[t_idx, pos] - fp_before[t_idx, cat]
    tp_f = ntp.astype(float)
    pr = tp_f / (nfp.astype(float) + tp_f + np.spacing(1))  # pycocotools' expression, same floats
    env = _suffix_max_by_run(pr, offset, count)
    count = count.reshape(T, K)
    offset = offset.reshape(T, K)
    recall[:, ks] = count[:, ks] / npig[ks].astype(float)  # 0 when the category has no detection
    need = np.stack([_needed_counts(int(npig[k])) for k in ks])[None]  # (1, nk, R)
    have = count[:, ks][:, :, None]  # (T, nk, 1)
    at = offset[:, ks][:, :, None] + np.maximum(need - 1, 0)
    ok = need <= have
    ok &= (need > 0) | (have > 0)  # recall point 0 reads the best precision, 0 without any true positive
    vals = np.where(ok, env[np.where(ok, at, 0)], 0.0) if len(env) else np.zeros(ok.shape)  # (T, nk, R)
    precision[:, :, ks] = vals.transpose(0, 2, 1)


def _suffix_max_by_run(values: np.ndarray, start: np.ndarray, length: np.ndarray) -> np.ndarray:
    """out[i] = max(values[i:end of i's run]) for runs given by start and length (exact: no offsets added)."""
    out = np.empty_like(values)
    live = np.flatnonzero(length > 0)
    if not len(live):
        return out
    bucket = np.ceil(np.log2(length[live])).astype(np.int64)  # runs of similar length share one padded array
    for b in np.unique(bucket):
        rows = live[bucket == b]
        width = 1 << int(b)
        idx = start[rows][:, None] + np.arange(width)[None, :]
        inside = np.arange(width)[None, :] < length[rows][:, None]
        padded = np.where(inside, values[np.where(inside, idx, 0)], -np.inf)
        suffix = np.maximum.accumulate(padded[:, ::-1], axis=1)[:, ::-1]
        out[idx[inside]] = suffix[inside]
    return out


_NEED_CACHE: dict[int, np.ndarray] = {}


def _needed_counts(npig: int) -> np.ndarray:
    """For each recall point r: the fewest true positives c with float(c / npig) >= r."""
    hit = _NEED_CACHE.get(npig)
    if hit is not None:
        return hit
    c = np.ceil(RECALL_THRESHOLDS * npig).astype(np.int64)
    c = np.where((c > 0) & ((c - 1) / npig >= RECALL_THRESHOLDS), c - 1, c)
    c = np.where(c / npig < RECALL_THRESHOLDS, c + 1, c)
    _NEED_CACHE[npig] = c
    return c


def _stats(precision: np.ndarray, recall: np.ndarray) -> np.ndarray:
    """COCOeval.summarize()'s 12 numbers."""
    stats = np.zeros(len(_SUMMARY))
    for n, (ap, thr, area, m) in enumerate(_SUMMARY):
        a = AREA_LABELS.index(area)
        if ap == 1:
            s = precision
            if thr is not None:
                s = s[np.where(thr == IOU_THRESHOLDS)[0]]
            s = s[:, :, :, a, m]
        else:
            s = recall
            if thr is not None:
                s = s[np.where(thr == IOU_THRESHOLDS)[0]]
            s = s[:, :, a, m]
        stats[n] = -1 if len(s[s > -1]) == 0 else np.mean(s[s > -1])
    return stats

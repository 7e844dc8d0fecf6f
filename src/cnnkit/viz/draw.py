"""Drawing annotations and predictions on images: boxes with labels, masks as colour overlays, landmarks as dots.

    picture = draw_annotations(image, {"boxes": b, "labels": l, "scores": s, "masks": m}, class_names)

Works on ground truth and predictions alike (a "scores" entry adds the score to each label). OpenCV draws; small
images are enlarged first (nearest neighbour) so that text stays readable.
"""

from __future__ import annotations

import numpy as np

# tab10 then tab20's light shades: distinct, readable on most backgrounds
_COLOURS = np.array([
    (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
    (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207), (174, 199, 232), (255, 187, 120),
    (152, 223, 138), (255, 152, 150), (197, 176, 213), (196, 156, 148), (247, 182, 210), (199, 199, 199),
    (219, 219, 141), (158, 218, 229),
], np.uint8)


def class_colour(k: int) -> tuple[int, int, int]:
    """The RGB colour of class k (repeats after 20 classes)."""
    c = _COLOURS[int(k) % len(_COLOURS)]
    return int(c[0]), int(c[1]), int(c[2])


def _to_uint8_hwc(image) -> np.ndarray:
    a = image.detach().cpu().numpy() if hasattr(image, "detach") else np.asarray(image)
    if a.ndim == 3 and a.shape[0] in (1, 3) and a.shape[-1] not in (1, 3):
        a = a.transpose(1, 2, 0)  # (C, H, W) tensor layout
    if a.ndim == 2:
        a = a[..., None]
    if a.shape[-1] == 1:
        a = np.repeat(a, 3, axis=-1)
    if a.dtype != np.uint8:
        a = (np.clip(a.astype(np.float32), 0, 1) * 255 + 0.5).astype(np.uint8)
    return np.ascontiguousarray(a)


def _np(x):
    if x is None:
        return None
    return x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)


def draw_annotations(image, target: dict, class_names=None, *, scale: float | None = None, alpha: float = 0.45,
                     min_side: int = 384, show_landmark_ids: bool = False) -> np.ndarray:
    """A picture of `image` with `target` drawn on it.

    Args:
        image: uint8 (H, W, 3), or float (H, W, 3) / (C, H, W) in [0, 1] (numpy or tensor).
        target: any of "boxes" (N, 4) xyxy pixels, "labels" (N,), "scores" (N,), "masks" (N, H, W) instance
            masks, "semantic" (H, W) class map (0 background, k + 1 class k, 255 ignore), "keypoints" (N, K, 2)
            or (N, K, 3) pixels (points with visibility 0 are not drawn).
        class_names: names of the classes (labels index them); None draws the numbers.
        scale: enlargement factor; default: enough for the shorter side to reach `min_side`.
        alpha: opacity of the mask overlays.
        show_landmark_ids: write each landmark's index beside it.

    Returns:
        uint8 (H * scale, W * scale, 3).
    """
    import cv2

    img = _to_uint8_hwc(image)
    h, w = img.shape[:2]
    s = scale if scale is not None else max(1.0, min_side / max(1, min(h, w)))
    labels = _np(target.get("labels"))
    n = 0 if labels is None else len(labels)
    out = img.astype(np.float32)
    masks = _np(target.get("masks"))
    if masks is not None and len(masks):
        for i, m in enumerate(masks.astype(bool)):
            col = np.asarray(class_colour(labels[i] if labels is not None else i), np.float32)
            out[m] = out[m] * (1 - alpha) + col * alpha
    sem = _np(target.get("semantic"))
    if sem is not None:
        for k in np.unique(sem):
            if k == 0:
                continue
            m = sem == k
            col = np.asarray((255, 255, 255) if k == 255 else class_colour(int(k) - 1), np.float32)
            out[m] = out[m] * (1 - alpha) + col * alpha
    out = np.clip(out + 0.5, 0, 255).astype(np.uint8)
    if s != 1.0:
        out = cv2.resize(out, (int(round(w * s)), int(round(h * s))), interpolation=cv2.INTER_NEAREST)
    out = np.ascontiguousarray(out)
    font, fs = cv2.FONT_HERSHEY_SIMPLEX, 0.45
    boxes = _np(target.get("boxes"))
    scores = _np(target.get("scores"))
    if boxes is not None:
        for i, b in enumerate(np.asarray(boxes, np.float64).reshape(-1, 4)):
            k = int(labels[i]) if labels is not None and i < n else 0
            col = class_colour(k)
            x1, y1, x2, y2 = (int(round(v * s)) for v in b)
            cv2.rectangle(out, (x1, y1), (x2 - 1, y2 - 1), col, 2)
            name = class_names[k] if class_names is not None and 0 <= k < len(class_names) else str(k)
            text = f"{name} {float(scores[i]):.2f}" if scores is not None else name
            (tw, th), base = cv2.getTextSize(text, font, fs, 1)
            ty = y1 - 2 if y1 - th - base - 2 >= 0 else y1 + th + 2
            cv2.rectangle(out, (x1, ty - th - 2), (x1 + tw + 2, ty + base - 1), col, -1)
            dark = sum(col) > 380
            cv2.putText(out, text, (x1 + 1, ty - 1), font, fs, (0, 0, 0) if dark else (255, 255, 255), 1, cv2.LINE_AA)
    kps = _np(target.get("keypoints"))
    if kps is not None and len(kps):
        kps = np.asarray(kps, np.float64).reshape(len(kps), -1, kps.shape[-1])
        for i, pts in enumerate(kps):
            col = class_colour(int(labels[i])) if labels is not None and i < n else (255, 255, 0)
            for j, p in enumerate(pts):
                if p.shape[0] > 2 and p[2] == 0:
                    continue
                c = (int(round(p[0] * s)), int(round(p[1] * s)))
                cv2.circle(out, c, 4, (255, 255, 255), -1, cv2.LINE_AA)
                cv2.circle(out, c, 3, col, -1, cv2.LINE_AA)
                if show_landmark_ids:
                    cv2.putText(out, str(j), (c[0] + 4, c[1] - 3), font, 0.35, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def item_target(item) -> dict:
    """The drawable target of a `DetectionItem` (what `DetectionDataset.raw` gives)."""
    t = {"boxes": item.boxes, "labels": item.labels}
    if item.masks is not None:
        t["masks"] = item.masks
    elif item.semantic is not None:
        t["semantic"] = item.semantic
    if item.keypoints is not None:
        t["keypoints"] = item.keypoints
    return t


def annotation_grid(ds, n: int = 8, *, cols: int = 4, indices=None, title: str | None = None):
    """A matplotlib figure of `n` images of a DetectionDataset with their annotations drawn."""
    import matplotlib.pyplot as plt

    idx = list(indices) if indices is not None else list(range(min(n, len(ds))))
    cols = max(1, min(cols, len(idx)))
    rows = max(1, -(-len(idx) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.0 * cols, 3.0 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, i in zip(axes.ravel(), idx, strict=False):
        item = ds.raw(i)
        ax.imshow(draw_annotations(item.image, item_target(item), ds.classes, min_side=256))
        if item.masks is None and item.semantic is not None and not len(item.labels):  # a class map, no objects
            present = [ds.classes[k - 1] for k in np.unique(item.semantic) if 0 < k <= len(ds.classes)]
            ax.set_title(f"#{item.image_id}: {', '.join(present) or 'background'}", fontsize=8)
        else:
            ax.set_title(f"#{item.image_id}: {len(item.labels)} object(s)", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout(pad=0.3)
    return fig

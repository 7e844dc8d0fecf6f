"""Pictures of augmentations: a labelled grid of samples, with boxes and landmarks drawn on them."""

from __future__ import annotations

import numpy as np


def square_image(image, size: int):
    """Centre-crop a uint8 (H, W, 3) image to a square and resize it to size x size (bilinear)."""
    from PIL import Image

    h, w = image.shape[:2]
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    im = Image.fromarray(image[top : top + s, left : left + s]).resize((size, size), Image.BILINEAR)
    return np.asarray(im)


def augment_grid(image, spec: str, *, n: int, seed: int, boxes=None, landmarks=None):
    """A matplotlib figure: the original and `n` samples for each op of `spec` alone, then all chained.

    Args:
        image: uint8 (H, W, 3).
        spec: comma-separated ops ("flip,rotate=30").
        n: samples per row.
        seed: seed of every row's generator.
        boxes: optional (N, 4) xyxy boxes drawn in red on every tile, moved with the image.
        landmarks: optional (K, 2) points drawn in yellow, moved with the image.
    """
    import matplotlib.pyplot as plt
    import torch

    from cnnkit.augment import Sample, build_transform, parse_spec

    size = image.shape[0]
    parts = [p.strip() for p in spec.split(",") if p.strip()]
    rows = [(p, p) for p in parts if parse_spec(p)]
    if len(rows) > 1:
        rows.append(("all chained", ",".join(parts)))
    x = torch.from_numpy(np.array(image)).permute(2, 0, 1).float() / 255.0
    fig, axes = plt.subplots(len(rows), n + 1, figsize=(1.5 * (n + 1), 1.5 * len(rows)), squeeze=False)
    for r, (label, row_spec) in enumerate(rows):
        aug = build_transform(row_spec, image_size=size, seed=seed + r)
        for c in range(n + 1):
            sample = Sample(x, boxes=boxes, landmarks=landmarks)
            out = sample if c == 0 else aug(sample)
            ax = axes[r, c]
            ax.imshow(out.image.clamp(0, 1).permute(1, 2, 0).numpy(), interpolation="nearest")
            draw_targets(ax, out)
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(label, fontsize=9, rotation=0, ha="right", va="center")
            if r == 0:
                ax.set_title("original" if c == 0 else f"sample {c}", fontsize=9)
    fig.tight_layout(pad=0.3)
    return fig


def draw_targets(ax, sample) -> None:
    """Draw a Sample's boxes (red) and landmarks (yellow) on a matplotlib axis showing its image."""
    from matplotlib.patches import Rectangle

    if sample.boxes is not None:
        for x1, y1, x2, y2 in sample.boxes.tolist():
            # pixel (r, c) is drawn centred on (c, r) by imshow: shift the continuous frame by half a pixel
            ax.add_patch(Rectangle((x1 - 0.5, y1 - 0.5), x2 - x1, y2 - y1, fill=False, ec="red", lw=1.2))
    if sample.landmarks is not None:
        pts = sample.landmarks.reshape(-1, 2)
        ax.scatter(pts[:, 0] - 0.5, pts[:, 1] - 0.5, s=9, c="yellow", edgecolors="black", linewidths=0.4)
    h, w = sample.size
    ax.set_xlim(-0.5, w - 0.5)
    ax.set_ylim(h - 0.5, -0.5)

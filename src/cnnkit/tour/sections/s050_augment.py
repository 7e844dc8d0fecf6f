"""Tour: data augmentation on a real photo, with a box and landmarks that move with it; PCA colour directions."""

from __future__ import annotations

import numpy as np

TITLE = "Data augmentation"
ORDER = 50

# skimage's astronaut, cropped to her head and shoulders: a face box and 5 landmarks, in crop pixels
_CROP = (60, 0, 320)  # left, top, side in the 512x512 photo
_FACE_BOX = (110.0, 62.0, 215.0, 178.0)
_LANDMARKS = ((142.0, 100.0), (187.0, 102.0), (160.0, 120.0), (145.0, 142.0), (177.0, 142.0))  # eyes, nose, mouth

_OPS = "flip,crop,resized_crop,rotate=25,shear=15,translate=0.15,scale=0.25,elastic=0.04,color=0.15,pca=1"


def build(section, ctx) -> None:
    import torch
    from skimage import data

    from cnnkit.augment import Sample, build_transform, fit_pca_colour
    from cnnkit.augment.grid import augment_grid

    size = 96 if ctx.quick else 160
    n = 2 if ctx.quick else 5
    photo, boxes, landmarks = _astronaut(size)

    section.text(
        "A network sees each training image once per epoch; augmentation shows it a slightly different version "
        "every time: mirrored, cropped, rotated, sheared, shifted, zoomed, locally warped, or with its colours "
        "shifted. Each operation draws its random parameters once (an angle, an offset, a displacement field) and "
        "applies the same deterministic transform to the image and to everything attached to it: boxes for "
        "detection, masks for segmentation, landmarks for faces. Below, the red box and yellow landmarks were "
        "transformed by cnnkit from the parameters alone, never re-detected: they stay on the face."
    )
    fig = augment_grid(photo, _OPS, n=n, seed=ctx.seed, boxes=boxes, landmarks=landmarks)
    section.figure(fig, "grid", "Each row: one augmentation alone (random parameters per column), then all chained. "
                   "Geometric ops move the box (bounding box of its transformed corners, clipped) and the landmarks "
                   "with the image; colour ops leave them alone. pca is shown at 10x its training strength.")
    section.code(
        "from cnnkit.augment import build_transform, Sample\n"
        "aug = build_transform('flip,crop,rotate=25,color', image_size=160, seed=0)\n"
        "out = aug(Sample(image, boxes=boxes, landmarks=points))   # out.image, out.boxes, out.landmarks\n\n"
        "$ cnnkit augment photo.jpg -o grid.png --ops flip,rotate=30,elastic --n 6"
    )

    # fancy PCA: principal colour directions of a few photos
    photos = [data.astronaut(), data.coffee(), data.chelsea()]
    if not ctx.quick:
        photos += [data.rocket(), data.immunohistochemistry()]
    stats = fit_pca_colour(photos, max_pixels=200_000 if ctx.quick else 1_000_000, seed=ctx.seed)
    section.text(
        "PCA colour augmentation (AlexNet's \"fancy PCA\") shifts every pixel by the same RGB vector "
        "sum_k alpha_k * lambda_k * p_k, where p_k and lambda_k are the eigenvectors and eigenvalues of the RGB "
        "covariance of the training pixels and alpha_k ~ N(0, 0.1). The shift follows the directions in which "
        "natural colours actually vary (mostly brightness, then warm-cold), so the picture changes like a change "
        "of lighting rather than a random tint."
    )
    rows = [[f"p{k + 1}", float(stats.eigvals[k]), float(np.sqrt(stats.eigvals[k])),
             " ".join(f"{v:+.3f}" for v in stats.eigvecs[:, k])] for k in range(3)]
    section.table(rows, ["component", "eigenvalue (variance)", "std along it", "direction (R G B)"],
                  caption=f"Principal colour components of {len(photos)} skimage photos (pixels on [0, 1])")
    x = torch.from_numpy(np.array(photo)).permute(2, 0, 1).float() / 255.0
    section.figure(_pca_figure(x, stats, photos, ctx.seed), "pca",
                   "Left: pixels of the photos in RGB space with the three principal directions (arrows, 2 standard "
                   "deviations long). Right: the photo moved along each direction by -2..+2 standard deviations "
                   "(far more than training uses, to make the direction visible).")
    aug = build_transform("pca", image_size=size, seed=ctx.seed, pca=stats)
    deltas = [(aug(Sample(x)).image - x).mean(dim=(1, 2)).tolist() for _ in range(4)]
    section.code("pca shifts drawn at training strength (alpha ~ N(0, 0.1)), RGB added to every pixel:\n" + "\n".join(
        "  " + " ".join(f"{v:+.4f}" for v in d) for d in deltas))


def _astronaut(size: int):
    """The head-and-shoulders crop at size x size, with its face box and landmarks scaled to match."""
    from PIL import Image
    from skimage import data

    left, top, side = _CROP
    photo = data.astronaut()[top : top + side, left : left + side]
    photo = np.asarray(Image.fromarray(photo).resize((size, size), Image.BILINEAR))
    s = size / side
    boxes = np.array([_FACE_BOX], dtype=np.float32) * s
    landmarks = np.array(_LANDMARKS, dtype=np.float32) * s
    return photo, boxes, landmarks


def _pca_figure(x, stats, photos, seed: int):
    import matplotlib.pyplot as plt
    import torch

    steps = (-2, -1, 0, 1, 2)
    fig = plt.figure(figsize=(11, 4.2))
    grid = fig.add_gridspec(3, 3 + len(steps))
    ax = fig.add_subplot(grid[:, :3], projection="3d")
    rng = np.random.default_rng(seed)
    px = np.concatenate([p.reshape(-1, 3) for p in photos]) / 255.0
    px = px[rng.choice(len(px), 1500, replace=False)]
    ax.scatter(px[:, 0], px[:, 1], px[:, 2], c=px, s=3, depthshade=False)
    for k in range(3):
        v = stats.eigvecs[:, k] * 2 * np.sqrt(stats.eigvals[k])
        ax.quiver(*stats.mean, *v, color="k", lw=2.5 - 0.7 * k, arrow_length_ratio=0.15)
        ax.text(*(stats.mean + v * 1.15), f"p{k + 1}", fontsize=10)
    ax.set_xlabel("R")
    ax.set_ylabel("G")
    ax.set_zlabel("B")
    ax.set_title("pixels and principal directions", fontsize=9)

    for k in range(3):
        for j, t in enumerate(steps):
            a = fig.add_subplot(grid[k, 3 + j])
            shift = torch.as_tensor(stats.eigvecs[:, k] * t * np.sqrt(stats.eigvals[k]), dtype=torch.float32)
            a.imshow((x + shift.view(3, 1, 1)).clamp(0, 1).permute(1, 2, 0).numpy())
            a.set_xticks([])
            a.set_yticks([])
            if k == 0:
                a.set_title(f"{t:+d} std", fontsize=8)
            if j == 0:
                a.set_ylabel(f"p{k + 1}", fontsize=10, rotation=0, ha="right", va="center")
    fig.tight_layout()
    return fig

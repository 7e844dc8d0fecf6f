"""Tour: edge detection with hand-made filters, their sign conventions, and a filter learned by gradient descent."""

from __future__ import annotations

import numpy as np

TITLE = "Edge detection, hand-made and learned"
ORDER = 20


def build(section, ctx) -> None:
    import matplotlib.pyplot as plt
    import skimage.data
    from skimage.transform import resize

    from cnnkit.edges import (
        course_example,
        edge_response,
        get_filter,
        learn_edge_filter,
        normalize_for_display,
        to_grayscale,
    )

    photo = to_grayscale(skimage.data.camera())  # 512x512 gray, crisp edges
    if ctx.quick:
        photo = resize(photo, (192, 192), anti_aliasing=True)

    section.text(
        "The course's 'convolution' is a cross-correlation: the 3x3 filter slides over the image without being "
        "flipped, and each output is the sum of the products under it (torch's conv2d does the same; the "
        "convolution of signal processing flips the filter first). The vertical filter [[1,0,-1],[1,0,-1],[1,0,-1]] "
        "is positive where the image goes from light on the left to dark on the right; the horizontal filter is "
        "its transpose. Below, mid-gray means no edge, white a light-to-dark edge and black a dark-to-light one; "
        "'both' is the gradient magnitude sqrt(v^2 + h^2), black for no edge."
    )

    # 1. the course's 6x6 example, numbers written in the cells
    image, kernel, out = course_example()
    fig, axes = plt.subplots(1, 5, figsize=(10, 3.2), gridspec_kw={"width_ratios": [6, 1, 3, 1, 4]})
    panels = ((axes[0], image, "6x6 image"), (axes[2], kernel, "3x3 vertical filter"), (axes[4], out, "4x4 output"))
    for ax, arr, title in panels:
        ax.imshow(arr, cmap="gray", vmin=min(arr.min(), 0), vmax=max(arr.max(), 1))
        for (y, x), v in np.ndenumerate(arr):
            shade = (v - arr.min()) / (np.ptp(arr) or 1)
            ax.text(x, y, f"{v:g}", ha="center", va="center", fontsize=11, color="black" if shade > 0.5 else "white")
        ax.set_title(title)
        ax.set_xticks([])
        ax.set_yticks([])
    for ax, op in ((axes[1], "*"), (axes[3], "=")):  # "*" is the course's convolution: a cross-correlation
        ax.axis("off")
        ax.text(0.5, 0.5, op, fontsize=28, ha="center", va="center", transform=ax.transAxes)
    section.figure(fig, "course-example", "The course's example: 10s (light) on the left, 0s (dark) on the right. "
                   "Cross-correlated with the vertical filter, the 4x4 output is 30 in the two middle columns, "
                   "where the edge is, and 0 elsewhere. The edge looks thick because the image is tiny.")

    # 2. every filter in every direction on a real photo
    names = ("basic", "sobel", "scharr")
    fig, axes = plt.subplots(len(names), 4, figsize=(12, 3 * len(names)))
    for row, name in enumerate(names):
        axes[row, 0].imshow(photo, cmap="gray", vmin=0, vmax=1)
        label = "basic = Prewitt" if name == "basic" else name
        k = "\n".join(" ".join(f"{v:>3d}" for v in r) for r in get_filter(name).astype(int))
        axes[row, 0].set_ylabel(f"{label}\n\n{k}", fontsize=10, family="monospace", rotation=0, ha="right", va="center")
        for col, direction in enumerate(("vertical", "horizontal", "both"), start=1):
            r = edge_response(photo, name, direction)
            axes[row, col].imshow(normalize_for_display(r, signed=direction != "both"), cmap="gray", vmin=0, vmax=1)
            if row == 0:
                axes[row, col].set_title(direction)
        if row == 0:
            axes[row, 0].set_title("input (camera)")
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    section.figure(fig, "filters", "Each filter (rows; its vertical kernel on the left) in each direction. "
                   "Prewitt's kernel is the course's basic one, so they share a row. Sobel and Scharr weight the "
                   "centre row more, which smooths along the edge: less noisy lines, with the same sign conventions.")

    # 3. polarity and absolute value on a crop around the camera and tripod
    h, w = photo.shape
    crop = photo[int(0.15 * h):int(0.75 * h), int(0.25 * w):int(0.75 * w)]
    variants = (
        ("light-to-dark", dict(polarity="light-to-dark")),
        ("dark-to-light", dict(polarity="dark-to-light")),
        ("absolute value", dict(absolute=True)),
    )
    fig, axes = plt.subplots(1, 4, figsize=(13, 3.6))
    axes[0].imshow(crop, cmap="gray", vmin=0, vmax=1)
    axes[0].set_title("input")
    for ax, (title, kw) in zip(axes[1:], variants, strict=True):
        r = edge_response(crop, "sobel", "vertical", **kw)
        ax.imshow(normalize_for_display(r, signed=not kw.get("absolute", False)), cmap="gray", vmin=0, vmax=1)
        ax.set_title(f"sobel vertical, {title}")
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    section.figure(fig, "polarity", "Polarity: the dark-to-light kernel is the negated light-to-dark one, so "
                   "white and black swap. The absolute value keeps the edges of both kinds alike (black: no edge).")

    # 4. learning the filter from examples of its output
    small = resize(to_grayscale(skimage.data.camera()), (128, 128), anti_aliasing=True)
    learned = learn_edge_filter(small, "sobel", steps=400, lr=0.2, seed=ctx.seed)
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6), gridspec_kw={"width_ratios": [1, 1, 1.6]})
    for ax, arr, title in ((axes[0], learned.target, "target (Sobel)"), (axes[1], learned.kernel, "learned")):
        ax.imshow(arr, cmap="RdBu_r", vmin=-2.2, vmax=2.2)
        for (y, x), v in np.ndenumerate(arr):
            ax.text(x, y, f"{v:.3f}", ha="center", va="center", fontsize=10)
        ax.set_title(title)
        ax.set_xticks([])
        ax.set_yticks([])
    axes[2].semilogy(np.arange(1, len(learned.losses) + 1), learned.losses)
    axes[2].set_xlabel("gradient-descent step")
    axes[2].set_ylabel("mean squared error")
    axes[2].set_title("loss")
    axes[2].grid(True, which="major", alpha=0.3)
    fig.tight_layout()
    section.figure(fig, "learned", "A single 3x3 convolution, started from random numbers and trained by gradient "
                   "descent to reproduce the Sobel filter's output on a 128x128 photo, recovers the Sobel kernel: "
                   f"largest difference {learned.max_error:.1e} after {len(learned.losses)} steps. A network "
                   "learns its filters the same way, from data, instead of having them designed by hand.")
    section.table(
        [[len(learned.losses), learned.losses[0], learned.losses[-1], learned.max_error]],
        ["steps", "first loss", "last loss", "max |learned - target|"],
        caption="Learning the Sobel filter (SGD with momentum 0.9, learning rate 0.2, standardised image)",
    )

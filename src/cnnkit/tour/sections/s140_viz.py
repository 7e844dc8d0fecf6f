"""Tour: what the units of a pretrained network respond to, and where a classifier looks.

Top dataset patches per unit (Zeiler and Fergus) for an early and a deep layer of HED's VGG-16, cut to each unit's
receptive field; its first-layer filters; and Grad-CAM on EfficientNet-Lite0's ImageNet predictions when those
weights are installed.
"""

from __future__ import annotations

import time

import numpy as np

from cnnkit.threads import torch_threads

TITLE = "Visualising what units learn"
ORDER = 140

EARLY, DEEP = "relu2_2", "relu4_3"
CROPS = {"early": (240, 48), "deep": (64, 112)}  # (number of crops, crop side)
QUICK_CROPS = {"early": (60, 48), "deep": (16, 96)}


def _photos() -> list[np.ndarray]:
    import skimage.data

    names = ["astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "hubble_deep_field", "retina",
             "colorwheel", "brick", "grass", "gravel", "camera", "coins"]
    out = []
    for n in names:
        im = getattr(skimage.data, n)()
        out.append(np.repeat(im[..., None], 3, 2) if im.ndim == 2 else im[..., :3])
    return out


def _fit(image: np.ndarray, size: int) -> np.ndarray:
    from PIL import Image

    im = Image.fromarray(image)
    s = size / min(im.size)
    im = im.resize((max(size, round(im.width * s)), max(size, round(im.height * s))), Image.BILINEAR)
    left, top = (im.width - size) // 2, (im.height - size) // 2
    return np.asarray(im.crop((left, top, left + size, top + size)))


def build(section, ctx) -> None:
    from cnnkit.errors import CnnkitError
    from cnnkit.style.features import layer_geometry, load_network
    from cnnkit.viz.filters import filters_figure
    from cnnkit.viz.units import sample_crops, strongest_units, top_patches, units_figure

    section.text(
        "Zeiler and Fergus (2013) looked inside a trained ConvNet by finding, for a unit, the image patches that "
        "excite it most. A unit of a deeper layer sees a larger window of the image (its receptive field, computed "
        "by `cnnkit.shapes`), so its patches are larger and, in a trained network, show textures and parts where "
        "the first layers show colours and edges. The network here is HED's VGG-16 (ImageNet VGG-16 fine-tuned "
        "for edge detection, the pretrained convolutional network that ships offline); the patches come from "
        "random crops of scikit-image's photos."
    )
    try:
        hed = load_network("vgg16_hed", "hed")
    except CnnkitError as e:
        section.text(f"HED's VGG-16 weights are not available here ({e}); the section needs them.")
        return
    photos = _photos()
    crops_cfg = QUICK_CROPS if ctx.quick else CROPS
    rows = []
    with torch_threads(2):
        for which, layer in (("early", EARLY), ("deep", DEEP)):
            n, side = crops_cfg[which]
            crops = sample_crops(photos, n, side, seed=ctx.seed)
            start = time.perf_counter()
            units = strongest_units(hed.model, layer, crops, n=4 if ctx.quick else 6, norm=hed.norm)
            patches = top_patches(hed.model, layer, crops, units=units, k=6 if ctx.quick else 8, norm=hed.norm)
            seconds = time.perf_counter() - start
            r, j, _ = layer_geometry(hed.model, layer, input_size=(side, side))
            rows.append([layer, f"{r} x {r}", j, n, side, f"{seconds:.1f} s"])
            section.figure(units_figure(patches, f"{layer}: each row one unit, its top patches left to right "
                                                 f"({r} px receptive field)"), f"units-{layer}",
                           f"{'Early' if which == 'early' else 'Deep'} layer {layer}: "
                           + ("colours, edges of one orientation, small spots."
                              if which == "early" else "each unit's patches share a texture or a motif, over "
                                                       "windows larger than most objects in the crops."))
    section.table(rows, ["layer", "receptive field (px)", "jump (px)", "crops searched", "crop side", "time"],
                  caption="Receptive fields from cnnkit.shapes over the layers before each one")
    section.figure(filters_figure(hed.model, bgr=True), "filters",
                   "conv1_1's 64 filters of 3x3x3 as colour images (BGR weights shown in RGB order): colour "
                   "detectors and edge detectors.")

    try:
        lite = load_network("efficientnet_lite0", "imagenet")
    except CnnkitError as e:
        section.text(f"Grad-CAM needs a classifier with real classes; EfficientNet-Lite0's ImageNet weights are not "
                     f"available in this run ({str(e)[:120]}), so that part is left out.")
        return
    import matplotlib.pyplot as plt
    import skimage.data

    from cnnkit.viz.cam import default_cam_layer, grad_cam, overlay

    size = lite.input_size[1] or 224
    pictures = {"chelsea": skimage.data.chelsea(), "coffee": skimage.data.coffee(),
                "astronaut": skimage.data.astronaut(), "rocket": skimage.data.rocket()}
    if ctx.quick:
        pictures = dict(list(pictures.items())[:2])
    layer = default_cam_layer(lite.model)
    fig, axes = plt.subplots(2, len(pictures), figsize=(2.6 * len(pictures), 5.6), squeeze=False)
    rows = []
    with torch_threads(2):
        for col, (name, img) in enumerate(pictures.items()):
            image = _fit(img, size)
            cam, c, probs = grad_cam(lite.model, image, None, layer, lite.norm)
            label = lite.classes[c] if lite.classes else str(c)
            axes[0, col].imshow(image)
            axes[0, col].set_title(name, fontsize=9)
            axes[1, col].imshow(overlay(image, cam))
            axes[1, col].set_title(f"{label[:22]} {float(probs[c]):.0%}", fontsize=9)
            top = probs.topk(3)
            rows.append([name, ", ".join(f"{lite.classes[i] if lite.classes else i} {v:.0%}"
                                         for v, i in zip(top.values.tolist(), top.indices.tolist(), strict=True))])
    for ax in axes.ravel():
        ax.axis("off")
    fig.suptitle(f"Grad-CAM of EfficientNet-Lite0's top class at {layer}", fontsize=10)
    fig.tight_layout()
    section.figure(fig, "gradcam", "Red: the regions whose activations raise the predicted class's score most.")
    section.table(rows, ["photo", "top-3 ImageNet classes"], caption="EfficientNet-Lite0 (ImageNet) predictions")

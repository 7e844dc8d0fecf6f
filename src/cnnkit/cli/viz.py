"""`cnnkit viz`: look inside a network: top patches per unit, filters, feature maps, maximisation, Grad-CAM.

    cnnkit viz units vgg16_hed --weights hed --layer relu3_3 -o units.png
    cnnkit viz filters runs/lenet/best.safetensors -o filters.png
    cnnkit viz gradcam efficientnet_lite0 --weights imagenet cat.jpg -o cam.png
"""

from __future__ import annotations

import argparse

from cnnkit.cli.common import positive_int


def _ints(text: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected whole numbers such as 0,5,12; got {text!r}") from None


def _model_args(p) -> None:
    p.add_argument("model", help="zoo model name (see `cnnkit models`) or a cnnkit model file (.safetensors)")
    p.add_argument("--weights", default=None, help="pretrained tag (imagenet, hed) or weights file for a zoo name")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "viz", help="visualise what a network learned: top patches, filters, maps, maximisation, Grad-CAM",
        description="Visualise units of any zoo model or cnnkit checkpoint. Layer names: module paths "
                    "(features.3, layer2.0) or, for VGG-style networks, conv4_2/relu4_2/pool3.",
    )
    sub = p.add_subparsers(dest="viz_command", metavar="{units,filters,maps,maximize,gradcam}")

    u = sub.add_parser("units", help="dataset patches that excite each unit most, cut to its receptive field",
                       description="Zeiler and Fergus: for each chosen unit of LAYER, the image crops where it "
                                   "fires most, each cut to the window the unit sees (receptive field from "
                                   "cnnkit.shapes). Images: a folder, or 'builtin' (scikit-image's photos).")
    _model_args(u)
    u.add_argument("--layer", required=True, help="layer name, e.g. relu3_3")
    u.add_argument("--units", type=_ints, default=None, help="channels to show (default: the most active ones)")
    u.add_argument("--n-units", type=positive_int, default=6, help="how many of the most active channels (default 6)")
    u.add_argument("--top", type=positive_int, default=8, help="patches per unit (default 8)")
    u.add_argument("--images", default="builtin", help="folder of images, or 'builtin' (default)")
    u.add_argument("--crops", type=positive_int, default=300, help="random crops searched (default 300)")
    u.add_argument("--crop-size", type=positive_int, default=128, help="side of each crop (default 128)")
    u.add_argument("--seed", type=int, default=0)
    u.add_argument("-o", "--output", default="units.png")
    u.set_defaults(func=run_units)

    f = sub.add_parser("filters", help="first-layer filters as images")
    _model_args(f)
    f.add_argument("--limit", type=positive_int, default=64, help="filters shown (default 64)")
    f.add_argument("-o", "--output", default="filters.png")
    f.set_defaults(func=run_filters)

    m = sub.add_parser("maps", help="feature maps of one layer for one image")
    _model_args(m)
    m.add_argument("image", help="image file")
    m.add_argument("--layer", required=True, help="layer name")
    m.add_argument("--n", type=positive_int, default=16, help="maps shown, strongest first (default 16)")
    m.add_argument("--size", type=positive_int, default=None, help="resize the image's longer side (default: "
                   "the network's input size)")
    m.add_argument("-o", "--output", default="maps.png")
    m.set_defaults(func=run_maps)

    x = sub.add_parser("maximize", help="an image optimised to excite one unit or class (jitter, L2, blur)")
    _model_args(x)
    x.add_argument("--layer", default=None, help="layer of the unit")
    x.add_argument("--unit", type=int, default=None, help="channel of the layer")
    x.add_argument("--class", dest="target_class", type=int, default=None, help="class index instead of a unit")
    x.add_argument("--where", choices=["center", "mean"], default="center",
                   help="the centre unit of the channel, or the whole channel's mean")
    x.add_argument("--size", type=positive_int, default=128)
    x.add_argument("--steps", type=positive_int, default=200)
    x.add_argument("--seed", type=int, default=0)
    x.add_argument("-o", "--output", default="maximize.png")
    x.set_defaults(func=run_maximize)

    g = sub.add_parser("gradcam", help="Grad-CAM and saliency of a prediction, overlaid on the image")
    _model_args(g)
    g.add_argument("image", help="image file")
    g.add_argument("--class", dest="target_class", type=int, default=None, help="class index (default: predicted)")
    g.add_argument("--layer", default=None, help="layer (default: the last convolutional block)")
    g.add_argument("-o", "--output", default="gradcam.png")
    g.set_defaults(func=run_gradcam)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def _network(args):
    from cnnkit.style.features import load_network

    return load_network(args.model, args.weights)


def _fit_input(image, size):
    """Resize the shorter side to `size` and centre-crop a square (ImageNet evaluation style)."""
    import numpy as np
    from PIL import Image

    im = Image.fromarray(image)
    s = size / min(im.size)
    im = im.resize((max(size, round(im.width * s)), max(size, round(im.height * s))), Image.BILINEAR)
    left, top = (im.width - size) // 2, (im.height - size) // 2
    return np.asarray(im.crop((left, top, left + size, top + size)))


def _builtin_photos():
    import numpy as np
    import skimage.data

    names = ["astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "hubble_deep_field", "retina",
             "colorwheel", "brick", "grass", "gravel", "camera", "coins", "moon"]
    out = []
    for n in names:
        im = getattr(skimage.data, n)()
        out.append(np.repeat(im[..., None], 3, 2) if im.ndim == 2 else im[..., :3])
    return out


def _folder_images(folder: str):
    from pathlib import Path

    from cnnkit.errors import InputError, MissingFileError
    from cnnkit.io import IMAGE_SUFFIXES, read_image

    p = Path(folder)
    if not p.is_dir():
        raise MissingFileError(f"image folder not found: {p} (or use --images builtin)")
    files = sorted(f for f in p.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise InputError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {p}")
    return [read_image(f, mode="RGB") for f in files[:2000]]


def run_units(args) -> int:
    from cnnkit.io import save_figure
    from cnnkit.style.features import layer_geometry
    from cnnkit.viz.units import sample_crops, strongest_units, top_patches, units_figure

    net = _network(args)
    photos = _builtin_photos() if args.images == "builtin" else _folder_images(args.images)
    crops = sample_crops(photos, args.crops, args.crop_size, seed=args.seed)
    units = args.units or strongest_units(net.model, args.layer, crops, n=args.n_units, norm=net.norm)
    patches = top_patches(net.model, args.layer, crops, units=units, k=args.top, norm=net.norm)
    r, j, _ = layer_geometry(net.model, args.layer, input_size=(args.crop_size, args.crop_size))
    title = f"{net.description}, {args.layer}: top {args.top} of {len(crops)} crops per unit; receptive field {r} px"
    save_figure(args.output, units_figure(patches, title))
    print(f"wrote {args.output}: units {units} of {args.layer} (receptive field {r}x{r} px, jump {j} px) over "
          f"{len(crops)} crops of {args.crop_size} px")
    return 0


def run_filters(args) -> int:
    from cnnkit.io import save_figure
    from cnnkit.viz.filters import filters_figure, first_conv

    net = _network(args)
    name, conv = first_conv(net.model)
    save_figure(args.output, filters_figure(net.model, bgr=net.norm.colour == "BGR", limit=args.limit))
    print(f"wrote {args.output}: {min(args.limit, conv.out_channels)} of the {conv.out_channels} filters of {name} "
          f"({net.description})")
    return 0


def run_maps(args) -> int:
    from cnnkit.io import read_image, save_figure
    from cnnkit.viz.maps import feature_maps, maps_figure

    net = _network(args)
    image = _fit_input(read_image(args.image, mode="RGB"), args.size or net.input_size[1] or 224)
    maps = feature_maps(net.model, args.layer, image, net.norm)
    save_figure(args.output, maps_figure(image, maps, args.layer, n=args.n))
    print(f"wrote {args.output}: {min(args.n, len(maps))} of {len(maps)} maps of {args.layer} "
          f"({maps.shape[1]}x{maps.shape[2]})")
    return 0


def run_maximize(args) -> int:
    from cnnkit.io import save_image
    from cnnkit.viz.maximize import maximize

    net = _network(args)
    img, hist = maximize(net.model, layer=args.layer, unit=args.unit, target_class=args.target_class,
                         norm=net.norm, size=args.size, steps=args.steps, where=args.where, seed=args.seed)
    save_image(args.output, img)
    what = f"class {args.target_class}" if args.target_class is not None else f"unit {args.unit} of {args.layer}"
    if args.target_class is not None and net.classes:
        what += f" ({net.classes[args.target_class]})"
    print(f"wrote {args.output}: {what}, objective {hist[0]:.3g} -> {hist[-1]:.3g} in {args.steps} steps")
    return 0


def run_gradcam(args) -> int:
    import matplotlib.pyplot as plt

    from cnnkit.io import read_image, save_figure
    from cnnkit.viz.cam import default_cam_layer, grad_cam, overlay, saliency

    net = _network(args)
    image = _fit_input(read_image(args.image, mode="RGB"), net.input_size[1] or 224)
    layer = args.layer or default_cam_layer(net.model)
    cam, c, probs = grad_cam(net.model, image, args.target_class, layer, net.norm)
    sal, _ = saliency(net.model, image, c, net.norm)
    names = net.classes or [str(i) for i in range(len(probs))]
    fig, axes = plt.subplots(1, 3, figsize=(9.5, 3.6))
    axes[0].imshow(image)
    axes[0].set_title("input", fontsize=9)
    axes[1].imshow(overlay(image, cam))
    axes[1].set_title(f"Grad-CAM ({layer}): {names[c]} {float(probs[c]):.0%}", fontsize=9)
    axes[2].imshow(sal, cmap="gray")
    axes[2].set_title("saliency |dy/dx|", fontsize=9)
    for ax in axes:
        ax.axis("off")
    fig.tight_layout()
    save_figure(args.output, fig)
    top = probs.topk(min(5, len(probs)))
    listed = ", ".join(f"{names[i]} {v:.1%}" for v, i in zip(top.values.tolist(), top.indices.tolist(), strict=True))
    print(f"wrote {args.output}: Grad-CAM of class {c} ({names[c]}) at {layer}; top: {listed}")
    return 0

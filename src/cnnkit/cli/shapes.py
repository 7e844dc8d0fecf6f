"""`cnnkit shapes`: each layer's output shape, parameters and receptive field, from a one-line network description."""

from __future__ import annotations

from cnnkit.cli.common import RawDefaultsFormatter, shape_hwc

EPILOG = """\
{syntax}
Example (LeNet-5 as in the course):
  cnnkit shapes --input 32x32x3 conv5x5s1p0c6 pool2 conv5x5c16 pool2 fc120 fc84 fc10

Columns: output shape (H x W x C, or N units after fc), activation size (number of values), parameters
(weights + biases), receptive field (input pixels one unit sees; "all" after gap/fc) and jump (input pixels
between neighbouring units).
"""


def register(subparsers) -> None:
    from cnnkit.shapes import LAYER_SYNTAX

    p = subparsers.add_parser(
        "shapes",
        help="output shape, parameters and receptive field of each layer of a network",
        description="Walk a stack of layers from an input shape and print each layer's output shape, activation "
        "size, parameter count and receptive field.",
        epilog=EPILOG.format(syntax=LAYER_SYNTAX),
        formatter_class=RawDefaultsFormatter,
    )
    p.add_argument("--input", "-i", type=shape_hwc, required=True, metavar="HxWxC", help="input shape, e.g. 32x32x3")
    p.add_argument("layers", nargs="+", metavar="LAYER", help="layer specs, first to last (see below)")
    p.set_defaults(func=run)


def _pair(v) -> str:
    if v is None:
        return "all"
    a, b = (f"{x:g}" if isinstance(x, float) else str(x) for x in v)
    return a if a == b else f"{a}x{b}"


def run(args) -> int:
    from cnnkit.shapes import trace

    rows = trace(args.input, args.layers)
    table = [("layer", "output", "activations", "params", "receptive field", "jump")]
    for r in rows:
        table.append((
            r.layer.spec if r.layer else "input",
            "x".join(str(d) for d in r.shape),
            f"{r.size:,}",
            f"{r.params:,}",
            _pair(r.receptive_field),
            _pair(r.jump) if r.jump is not None else "-",
        ))
    table.append(("total", "", "", f"{sum(r.params for r in rows):,}", "", ""))
    widths = [max(len(row[k]) for row in table) for k in range(len(table[0]))]
    for n, row in enumerate(table):
        cells = (cell.ljust(w) if k < 2 else cell.rjust(w) for k, (cell, w) in enumerate(zip(row, widths, strict=True)))
        print("  ".join(cells).rstrip())
        if n == 0 or n == len(table) - 2:
            print("  ".join("-" * w for w in widths))
    return 0

"""`cnnkit summary`: a model's layers, shapes, parameters and multiply-adds; `cnnkit cost`: the cost lessons."""

from __future__ import annotations

import json
from pathlib import Path

from cnnkit.cli.common import positive_int, shape_hwc


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "summary",
        help="layer-by-layer table of a model: activation shapes and sizes, parameters, multiply-adds",
        description="One row per layer (activation shape HxWxC, activation size, parameters, multiply-adds) and "
        "totals, for a registered model or a cnnkit model file. Example: cnnkit summary course_convnet",
    )
    p.add_argument("model", nargs="?", help="a registered model name (`cnnkit models` lists them) or a cnnkit "
                   "model file (.safetensors)")
    p.add_argument("--input", type=shape_hwc, metavar="HxWxC",
                   help="input image shape, e.g. 224x224x3 (default: the model's own input size)")
    p.add_argument("--num-classes", type=positive_int, metavar="N", help="build the model with N classes")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--all", action="store_true",
                   help="also show parameter-free element-wise layers (ReLU, dropout, flatten)")
    p.add_argument("--why", action="store_true", help="add what a fully-connected layer of the same input and "
                   "output sizes would cost (why convolutions)")
    p.add_argument("--lessons", action="store_true",
                   help="print the course's cost lessons (same as `cnnkit cost`)")
    p.set_defaults(func=run)

    c = subparsers.add_parser(
        "cost",
        help="the cost lessons: convolution vs fully connected, the 1x1 bottleneck, depthwise-separable",
        description="Each lesson computed from its formula and measured on real layers. Without options, the "
        "course's own examples; the options replace them, e.g. cnnkit cost --input 56x56x64 --out-channels 128 "
        "--filter 3",
    )
    c.add_argument("--input", type=shape_hwc, metavar="HxWxC", help="input shape of the layer")
    c.add_argument("--out-channels", type=positive_int, metavar="N", help="output channels of the layer")
    c.add_argument("--filter", type=positive_int, metavar="F", help="filter size f (odd, for 'same' padding)")
    c.add_argument("--bottleneck", type=positive_int, metavar="N", help="channels of the 1x1 bottleneck")
    c.add_argument("--json", action="store_true", help="print the numbers as JSON")
    c.set_defaults(func=run_cost)


def run(args) -> int:
    if args.lessons:
        from cnnkit.cost import lessons_text

        print(lessons_text())
        if not args.model:
            return 0
        print()
    if not args.model:
        from cnnkit.errors import InputError

        raise InputError("give a model name (`cnnkit models` lists them) or --lessons")

    s = summarise(args.model, args.input, num_classes=args.num_classes, hide_elementwise=not args.all)
    if args.json:
        print(json.dumps(s.to_dict(), indent=2))
    else:
        print(s.to_text(why=args.why))
    return 0


def summarise(model: str, input_hwc: tuple[int, int, int] | None = None, *, num_classes: int | None = None,
              hide_elementwise: bool = True):
    """Build `model` (a registered name or a cnnkit model file) and summarise it for an HxWxC input."""
    from cnnkit.summary import summary

    kwargs: dict = {}
    input_chw = (input_hwc[2], input_hwc[0], input_hwc[1]) if input_hwc else None
    if model.endswith(".safetensors") or Path(model).is_file():
        from cnnkit.checkpoint import read_model_meta
        from cnnkit.errors import FileFormatError

        meta = read_model_meta(model)
        if meta is None:
            raise FileFormatError(f"{model} has no cnnkit model description; give a model name instead")
        name, kwargs = meta["model"], dict(meta.get("model_kwargs", {}))
        if input_chw is None and meta.get("input_size"):
            input_chw = tuple(meta["input_size"])
    else:
        name = model
    if num_classes is not None:
        kwargs["num_classes"] = num_classes
    if input_chw is not None and input_chw[0] != 3 and "in_chans" not in kwargs and _takes(name, "in_chans"):
        kwargs["in_chans"] = input_chw[0]  # a 28x28x1 input asks for a one-channel model
    net = _build(name, kwargs)
    try:
        return summary(net, input_chw, hide_elementwise=hide_elementwise, name=name)
    except Exception:
        if next(net.parameters(), None) is None or next(net.parameters()).device.type != "meta":
            raise
    # some models compute on values (a data-dependent branch): count them on real tensors instead
    return summary(_build(name, kwargs, meta=False), input_chw, hide_elementwise=hide_elementwise, name=name)


def _takes(name: str, argument: str) -> bool:
    import inspect

    from cnnkit.models import get_model_builder

    return argument in inspect.signature(get_model_builder(name)).parameters


def _build(name: str, kwargs: dict, meta: bool = True):
    import torch

    from cnnkit.errors import CnnkitError
    from cnnkit.models import create_model, get_model_builder

    get_model_builder(name)  # an unknown name fails here, with the close matches
    if meta:
        # on the meta device a model has sizes but no values: vgg16 is summarised in a blink, with no 500 MB
        try:
            with torch.device("meta"):
                return create_model(name, **kwargs)
        except CnnkitError:
            raise
        except Exception:  # a builder that needs real values; build it on the CPU below
            pass
    return create_model(name, **kwargs)


def run_cost(args) -> int:
    from cnnkit.cost import lessons, lessons_text

    kw = {
        "in_shape": (args.input[2], args.input[0], args.input[1]) if args.input else None,
        "out_channels": args.out_channels,
        "f": args.filter,
        "bottleneck_channels": args.bottleneck,
    }
    if args.json:
        print(json.dumps(lessons(**kw), indent=2))
    else:
        print(lessons_text(**kw))
    return 0

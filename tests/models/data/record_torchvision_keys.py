"""Record torchvision's state-dict key names and shapes into torchvision_state_dicts.json.

Run by hand, never by the test suite: cnnkit does not depend on torchvision, and torchvision's compiled ops do
not load in the project's environment. The recording used a separate virtual environment holding torch and
torchvision (for the committed JSON: torch 2.13.0+cpu, torchvision 0.29.2), and a shim that imports only
torchvision's pure-Python model definitions:

    VENV_WITH_TORCHVISION/bin/python tests/models/data/record_torchvision_keys.py

The shim registers an empty `torchvision` package pointing at the installed sources, then does
`import torchvision.models as tvm`. Models are built on the "meta" device: no memory, no weights, only names
and shapes. The output holds, per model name, the list of [key, shape] pairs of `model.state_dict()` (buffers
such as BatchNorm running statistics included), one model per line.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

# name in the JSON -> (torchvision builder name, builder kwargs)
MODELS = {
    "alexnet": ("alexnet", {}),
    **{f"vgg{d}": (f"vgg{d}", {}) for d in (11, 13, 16, 19)},
    **{f"vgg{d}_bn": (f"vgg{d}_bn", {}) for d in (11, 13, 16, 19)},
    **{f"resnet{d}": (f"resnet{d}", {}) for d in (18, 34, 50, 101, 152)},
    "mobilenet_v2": ("mobilenet_v2", {}),
    "efficientnet_b0": ("efficientnet_b0", {}),
    "googlenet": ("googlenet", {"aux_logits": False, "init_weights": False}),
    "googlenet_aux": ("googlenet", {"aux_logits": True, "init_weights": False}),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--shim", default=str(Path(__file__).with_name("torchvision_shim.py")),
        help="file that imports torchvision.models as tvm",
    )
    parser.add_argument("--out", default=str(Path(__file__).with_name("torchvision_state_dicts.json")))
    args = parser.parse_args()

    import torch

    namespace: dict = {}
    exec(Path(args.shim).read_text(), namespace)  # defines tvm without torchvision's compiled extension
    tvm = namespace["tvm"]
    lines = []
    for name, (builder, kwargs) in MODELS.items():
        with torch.device("meta"):
            model = getattr(tvm, builder)(**kwargs)
        entries = [[k, list(v.shape)] for k, v in model.state_dict().items()]
        lines.append(f"{json.dumps(name)}: {json.dumps(entries, separators=(',', ':'))}")
        print(f"{name}: {len(entries)} tensors")
    Path(args.out).write_text("{\n" + ",\n".join(lines) + "\n}\n")


if __name__ == "__main__":
    main()

"""Numerical parity with torchvision's own models, run by hand where torchvision works.

Not collected by pytest (torchvision cannot load next to this project's torch). On a machine with a working
torchvision (the lent GPU machine has one), from the repository root:

    PYTHONPATH=src python tests/models/parity_torchvision.py

or, where torchvision is installed but its compiled ops do not load (as beside torch 2.13.0 here):

    PYTHONPATH=src VENV_WITH_TORCHVISION/bin/python tests/models/parity_torchvision.py --shim

Last run (torch 2.13.0 CPU, torchvision 0.29.2 through the shim): all 17 architectures load strictly and give
outputs identical to torchvision's (max relative difference 0.0 in float64).

For each architecture torchvision has, it builds torchvision's model with random weights, loads its state dict
unchanged into the cnnkit model of the same name (strict), and compares the outputs on a random batch in float64.
A key-name match alone would not catch a layer applied in the wrong order or a wrong stride; this does.
"""

import runpy
import sys
from pathlib import Path

if "--shim" in sys.argv:
    runpy.run_path(str(Path(__file__).parent / "data" / "torchvision_shim.py"))

import torch  # noqa: E402
import torchvision.models as tvm  # noqa: E402

from cnnkit.models import create_model, list_models  # noqa: E402

NAMES = [
    "alexnet", "vgg11", "vgg13", "vgg16", "vgg19", "vgg11_bn", "vgg13_bn", "vgg16_bn", "vgg19_bn",
    "resnet18", "resnet34", "resnet50", "resnet101", "resnet152",
    "googlenet", "mobilenet_v2", "efficientnet_b0",
]
TV_KWARGS = {"googlenet": {"aux_logits": False, "init_weights": True}}


def main() -> int:
    torch.manual_seed(0)
    x = torch.randn(2, 3, 224, 224, dtype=torch.float64)
    worst = 0.0
    failed = []
    for name in NAMES:
        if name not in list_models():
            print(f"{name:16s} not registered in cnnkit")
            failed.append(name)
            continue
        tv = getattr(tvm, name)(**TV_KWARGS.get(name, {})).double().eval()
        ours = create_model(name).double().eval()
        try:
            ours.load_state_dict(tv.state_dict(), strict=True)
        except RuntimeError as e:
            print(f"{name:16s} state dict does not load: {str(e)[:300]}")
            failed.append(name)
            continue
        with torch.no_grad():
            a, b = tv(x), ours(x)
        diff = (a - b).abs().max().item() / max(a.abs().max().item(), 1e-12)
        worst = max(worst, diff)
        status = "ok" if diff < 1e-9 else "MISMATCH"
        if status != "ok":
            failed.append(name)
        print(f"{name:16s} params {sum(p.numel() for p in ours.parameters()):>12,d}  max rel diff {diff:.2e}  {status}")
    print(f"worst relative difference {worst:.2e}; failed: {failed or 'none'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

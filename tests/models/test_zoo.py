"""Registry-driven tests over every registered model, and the published numbers of the zoo.

- forward and backward on small inputs, output shape, no NaN (every model in `list_models()`, whoever wrote it);
- the backbone contract (stages, features + head == forward, pre-logits, classifier reset);
- exact published parameter counts, multiply-adds within 1% of the published ones at 224x224;
- state-dict keys and shapes equal to torchvision's, recorded independently of our code in
  data/torchvision_state_dicts.json (see data/record_torchvision_keys.py).

Counting and key tests build models on the "meta" device: names and shapes without memory or initialisation,
so the 140M-parameter VGGs cost nothing there. Only the forward/backward and contract tests build real weights,
once per model (a module-scoped fixture shared by both tests).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from cnnkit.errors import InputError
from cnnkit.models import create_model, list_models

DATA = Path(__file__).parent / "data"
NUM_CLASSES = 7
BATCH = 2

# Smallest convenient square input per model where 32x32 is too small; networks whose published input is at most
# 64x64 (LeNet, the course's nets, CIFAR nets) run at their own size, every other one at 32x32.
SMALL_INPUT = {"alexnet": 64, "alexnet_paper": 67}

# Published parameter counts (torchvision's documentation, the papers, the course's Keras summary).
PUBLISHED_PARAMS = {
    "lenet5": 61_706,
    "lenet5_modern": 61_706,
    "alexnet": 61_100_840,
    "alexnet_paper": 60_965_224,  # Caffe's bvlc_alexnet, two groups as the paper's two GPUs
    "vgg11": 132_863_336,
    "vgg11_bn": 132_868_840,
    "vgg13": 133_047_848,
    "vgg13_bn": 133_053_736,
    "vgg16": 138_357_544,
    "vgg16_bn": 138_365_992,
    "vgg19": 143_667_240,
    "vgg19_bn": 143_678_248,
    "resnet18": 11_689_512,
    "resnet34": 21_797_672,
    "resnet50": 25_557_032,
    "resnet101": 44_549_160,
    "resnet152": 60_192_808,
    # Keras: 23,600,006 total = 23,546,886 trainable + 53,120 BatchNorm moving averages (buffers in PyTorch)
    "resnet50_course": 23_546_886,
    "mobilenet_v2": 3_504_872,
    "googlenet": 6_624_904,
    "efficientnet_b0": 5_288_548,
}

# Published multiply-adds for one 224x224 image (torchvision's documentation, its "GFLOPS" column counts MACs of
# convolutions and linear layers). Add a model by adding a line; names not registered yet are skipped.
PUBLISHED_MACS = {
    "alexnet": 0.714e9,
    "vgg11": 7.609e9,
    "vgg13": 11.308e9,
    "vgg16": 15.47e9,
    "vgg19": 19.632e9,
    "resnet18": 1.814e9,
    "resnet34": 3.664e9,
    "resnet50": 4.089e9,
    "resnet101": 7.801e9,
    "resnet152": 11.514e9,
    "mobilenet_v2": 0.301e9,
    "googlenet": 1.498e9,
}

# Entries of the recorded JSON -> (our model name, builder kwargs).
TORCHVISION_KEYS = {
    "alexnet": ("alexnet", {}),
    **{f"vgg{d}{bn}": (f"vgg{d}{bn}", {}) for d in (11, 13, 16, 19) for bn in ("", "_bn")},
    **{f"resnet{d}": (f"resnet{d}", {}) for d in (18, 34, 50, 101, 152)},
    "mobilenet_v2": ("mobilenet_v2", {}),
    "efficientnet_b0": ("efficientnet_b0", {}),
    "googlenet": ("googlenet", {"aux_logits": False}),
    "googlenet_aux": ("googlenet", {"aux_logits": True}),
}


def _require(name: str) -> None:
    if name not in list_models():
        pytest.skip(f"{name} is not registered")


def _meta_model(name: str, **kwargs) -> nn.Module:
    with torch.device("meta"):
        return create_model(name, **kwargs)


def _n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _input_size(name: str, model: nn.Module) -> tuple[int, int, int]:
    chans, h, w = model.default_input_size
    if name in SMALL_INPUT:
        return chans, SMALL_INPUT[name], SMALL_INPUT[name]
    return (chans, h, w) if max(h, w) <= 64 else (chans, 32, 32)


def _outputs(out) -> list[torch.Tensor]:
    """Logits first, then any auxiliary outputs (GoogLeNet in training mode returns a named tuple)."""
    return list(out) if isinstance(out, (tuple, list)) else [out]


def _classifiers() -> list[str]:
    """Registered models whose builder takes `num_classes`: the classifiers and backbones. Networks with other
    outputs (MTCNN's P/R/O-Net: boxes and face scores) have their own tests beside their files' tests."""
    import inspect

    from cnnkit.models import get_model_builder

    def _is_classifier(name: str) -> bool:  # models of other tasks (U-Net: task = "segmentation") test elsewhere
        import typing

        try:  # the class the builder says it returns, without building it
            cls = typing.get_type_hints(get_model_builder(name)).get("return")
        except Exception:
            return True
        return getattr(cls, "task", "classification") == "classification"

    return [n for n in list_models() if "num_classes" in inspect.signature(get_model_builder(n)).parameters
            and _is_classifier(n)]


@pytest.fixture(scope="module", params=_classifiers())
def built(request):
    """(name, model with NUM_CLASSES outputs, a small input batch), built once for the tests of one model."""
    name = request.param
    torch.manual_seed(0)
    model = create_model(name, num_classes=NUM_CLASSES)
    x = torch.randn(BATCH, *_input_size(name, model))
    return name, model, x


def test_forward_backward(built):
    name, model, x = built
    model.train()
    model.zero_grad(set_to_none=True)
    outs = _outputs(model(x))
    target = torch.arange(BATCH) % NUM_CLASSES
    for out in outs:
        assert out.shape == (BATCH, NUM_CLASSES), f"{name}: output shape {tuple(out.shape)}"
        assert torch.isfinite(out).all(), f"{name}: non-finite output"
    sum(F.cross_entropy(out, target) for out in outs).backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, f"{name}: parameters without gradient (unused in forward?): {missing[:5]}"
    bad = [n for n, p in model.named_parameters() if p.grad is not None and not torch.isfinite(p.grad).all()]
    assert not bad, f"{name}: non-finite gradients in {bad[:5]}"


def test_backbone_contract(built):
    name, model, x = built
    model.eval()
    with torch.no_grad():
        stages = model.forward_stages(x)
        assert len(stages) == len(model.stage_channels) >= 1
        assert [s.shape[1] for s in stages] == list(model.stage_channels) == list(model.out_channels)
        sizes = [s.shape[-1] for s in stages]
        assert sizes == sorted(sizes, reverse=True), f"{name}: stages should go from fine to coarse, got {sizes}"

        feats = model.forward_features(x)
        assert feats.shape[1] == model.num_features == model.stage_channels[-1]
        logits = model(x)
        torch.testing.assert_close(model.forward_head(feats), logits)
        assert logits.shape == (BATCH, NUM_CLASSES)
        # timm's names: an MLP head (VGG, AlexNet, LeNet) has a hidden width of its own, else it is num_features
        hidden = getattr(model, "head_hidden_size", model.num_features)
        pre = model.forward_head(feats, pre_logits=True)
        assert pre.shape == (BATCH, hidden)

        classifier = model.get_classifier()
        if isinstance(classifier, nn.Linear):
            assert (classifier.in_features, classifier.out_features) == (hidden, NUM_CLASSES)
        # forward == forward_head(forward_features) was checked above, so the head alone shows what reset did
        try:
            model.reset_classifier(3)
            assert model.forward_head(feats).shape == (BATCH, 3)
            model.reset_classifier(0)  # no classifier: the pre-logits features
            torch.testing.assert_close(model.forward_head(feats), pre)
        finally:
            model.reset_classifier(NUM_CLASSES)


@pytest.mark.parametrize("name", sorted(PUBLISHED_PARAMS))
def test_published_parameter_count(name):
    _require(name)
    assert _n_params(_meta_model(name)) == PUBLISHED_PARAMS[name]


@pytest.mark.parametrize("name", sorted(PUBLISHED_MACS))
def test_published_macs(name):
    _require(name)
    summary = pytest.importorskip("cnnkit.summary").summary
    macs = summary(_meta_model(name), (3, 224, 224)).total_macs
    assert math.isclose(macs, PUBLISHED_MACS[name], rel_tol=0.01), f"{name}: {macs / 1e9:.4f} GMACs"


def _recorded() -> dict[str, list]:
    return json.loads((DATA / "torchvision_state_dicts.json").read_text())


@pytest.mark.parametrize("entry", sorted(TORCHVISION_KEYS))
def test_state_dict_matches_torchvision(entry):
    name, kwargs = TORCHVISION_KEYS[entry]
    _require(name)
    expected = {k: list(shape) for k, shape in _recorded()[entry]}
    ours = {k: list(v.shape) for k, v in _meta_model(name, **kwargs).state_dict().items()}
    missing = sorted(set(expected) - set(ours))
    unexpected = sorted(set(ours) - set(expected))
    assert not missing and not unexpected, f"{entry}: missing {missing[:5]}, unexpected {unexpected[:5]}"
    wrong = [(k, ours[k], expected[k]) for k in expected if ours[k] != expected[k]]
    assert not wrong, f"{entry}: shapes differ (key, ours, torchvision): {wrong[:5]}"


def test_recorded_keys_cover_the_families():
    """The JSON must hold every entry the key test asks for (a re-recording that dropped one would skip silently)."""
    assert set(TORCHVISION_KEYS) <= set(_recorded())


def test_torchvision_style_checkpoint_loads_strictly(tmp_path):
    """A torchvision-layout state dict (here: the recorded shapes, filled with random values) loads strictly and
    the model then computes with those values."""
    recorded = _recorded()["resnet18"]
    state = {k: (torch.randn(s) if s else torch.tensor(0)) for k, s in recorded}
    for k in state:
        if k.endswith("running_var"):
            state[k] = state[k].abs() + 0.5
    torch.save(state, tmp_path / "resnet18-tv.pth")
    model = create_model("resnet18")
    model.load_state_dict(torch.load(tmp_path / "resnet18-tv.pth", weights_only=True), strict=True)
    torch.testing.assert_close(model.fc.weight, state["fc.weight"])
    assert torch.isfinite(model.eval()(torch.randn(1, 3, 32, 32))).all()


def test_small_grayscale_resnet():
    model = create_model("resnet18", num_classes=10, in_chans=1)
    assert model.default_input_size == (1, 224, 224)
    assert model(torch.randn(2, 1, 32, 32)).shape == (2, 10)
    assert create_model("resnet50", num_classes=3, in_chans=1).eval()(torch.randn(1, 1, 28, 28)).shape == (1, 3)


@pytest.mark.parametrize("name", ["lenet5", "alexnet", "vgg11", "resnet18", "resnet50_course"])
def test_dropout_is_settable(name):
    model = _meta_model(name, dropout=0.25)
    rates = {m.p for m in model.modules() if isinstance(m, nn.Dropout)}
    assert rates == {0.25}


def test_unknown_keyword_is_an_input_error():
    with pytest.raises(InputError, match="vgg16"):
        create_model("vgg16", no_such_option=1)


def test_lenet5_rejects_28x28_with_a_hint():
    with pytest.raises(InputError, match="pad 28x28"):
        create_model("lenet5")(torch.randn(1, 1, 28, 28))


def test_lenet5_layer_shapes():
    """The classic shapes: 28x28x6, 14x14x6, 10x10x16, 5x5x16, 120, 84, 10."""
    model = create_model("lenet5").eval()
    x = torch.randn(1, 1, 32, 32)
    c1 = model.c1(x)
    s2, s4, c5 = model.forward_stages(x)
    assert c1.shape == (1, 6, 28, 28) and s2.shape == (1, 6, 14, 14)
    assert model.c3(s2).shape == (1, 16, 10, 10) and s4.shape == (1, 16, 5, 5) and c5.shape == (1, 120, 1, 1)
    assert model.forward_head(c5, pre_logits=True).shape == (1, 84)
    assert isinstance(model.s2, nn.AvgPool2d) and isinstance(model.act, nn.Tanh)
    modern = create_model("lenet5_modern")
    assert isinstance(modern.s2, nn.MaxPool2d) and isinstance(modern.act, nn.ReLU)


def test_lenet5_matches_a_functional_reference():
    model = create_model("lenet5").eval()
    x = torch.randn(3, 1, 32, 32)
    p = dict(model.named_parameters())
    h = F.avg_pool2d(torch.tanh(F.conv2d(x, p["c1.weight"], p["c1.bias"])), 2)
    h = F.avg_pool2d(torch.tanh(F.conv2d(h, p["c3.weight"], p["c3.bias"])), 2)
    h = torch.tanh(F.conv2d(h, p["c5.weight"], p["c5.bias"])).flatten(1)
    h = torch.tanh(h @ p["f6.weight"].T + p["f6.bias"])
    expected = h @ p["output.weight"].T + p["output.bias"]
    torch.testing.assert_close(model(x), expected)


def test_alexnet_paper_layout():
    model = _meta_model("alexnet_paper")
    convs = [m for m in model.features if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [96, 256, 384, 384, 256]
    assert [c.groups for c in convs] == [1, 2, 1, 2, 2]
    assert sum(isinstance(m, nn.LocalResponseNorm) for m in model.features) == 2
    assert _n_params(_meta_model("alexnet_paper", grouped=False)) == 62_378_344
    # 227x227 (the paper's arithmetic) gives the 6x6x256 map fc6 was sized for, before any adaptive pooling
    assert model.forward_features(torch.empty(1, 3, 227, 227, device="meta")).shape == (1, 256, 6, 6)


def test_resnet50_course_layout():
    """The course's Keras ResNet-50: stride on the first 1x1 convolution, biases, unpadded max pool, 64x64 -> 6."""
    model = create_model("resnet50_course").eval()
    assert model.default_input_size == (3, 64, 64)
    block = model.layer2[0]
    assert block.conv1.stride == (2, 2) and block.conv2.stride == (1, 1) and block.downsample[0].stride == (2, 2)
    assert all(m.bias is not None for m in model.modules() if isinstance(m, nn.Conv2d))
    assert model.maxpool.padding == 0
    assert all(m.eps == 1e-3 for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    with torch.no_grad():
        stages = model.forward_stages(torch.randn(2, 3, 64, 64))
        assert [s.shape[-1] for s in stages] == [32, 15, 8, 4, 2]
        assert model(torch.randn(2, 3, 64, 64)).shape == (2, 6)
    # torchvision's ResNet-50 strides on the 3x3 convolution instead ("v1.5")
    tv_block = _meta_model("resnet50").layer2[0]
    assert tv_block.conv1.stride == (1, 1) and tv_block.conv2.stride == (2, 2)


def test_resnet_initialisation_and_zero_init_residual():
    model = create_model("resnet50")
    conv = model.layer3[1].conv2  # 256 -> 256, 3x3: fan_out = 256 * 9
    assert abs(conv.weight.std().item() - math.sqrt(2 / (256 * 9))) < 0.1 * math.sqrt(2 / (256 * 9))
    assert torch.all(model.layer1[0].bn3.weight == 1)
    zeroed = create_model("resnet18", zero_init_residual=True)
    assert all(torch.all(b.bn2.weight == 0) for layer in (zeroed.layer1, zeroed.layer4) for b in layer)
    assert torch.all(zeroed.layer1[0].bn1.weight == 1)


@pytest.mark.parametrize("depth", [18, 34, 50, 101, 152])
def test_plain_net_is_the_resnet_without_projections(depth):
    from cnnkit.layers.residual import ConvolutionalBlock, IdentityBlock, PlainBlock

    res, plain = _meta_model(f"resnet{depth}"), _meta_model(f"plain{depth}")
    projection = sum(p.numel() for n, p in res.named_parameters() if ".downsample." in n)
    assert projection > 0
    assert _n_params(plain) == _n_params(res) - projection
    blocks = [m for m in plain.modules() if isinstance(m, (IdentityBlock, ConvolutionalBlock, PlainBlock))]
    assert blocks and all(type(b) is PlainBlock for b in blocks)
    assert [len(getattr(plain, f"layer{i}")) for i in range(1, 5)] == [len(getattr(res, f"layer{i}")) for i in
                                                                       range(1, 5)]


def test_plain_net_adds_no_shortcut():
    """With every block's last BN zeroed, a block's main path gives 0: a plain block then outputs relu(0) = 0 while a
    residual block passes its input through, so only the residual network keeps a signal."""
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        plain = create_model("plain18", zero_init_residual=True).eval().forward_stages(x)
        res = create_model("resnet18", zero_init_residual=True).eval().forward_stages(x)
    assert all(torch.count_nonzero(s) == 0 for s in plain[1:])
    assert all(torch.count_nonzero(s) > 0 for s in res[1:])

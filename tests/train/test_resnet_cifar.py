"""CIFAR-style ResNets and their plain twins: architecture against the paper, shortcuts against a manual
computation, and the plain-vs-residual experiment's direction (gradients at the start; training loss in the
slow run)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import TensorDataset

from cnnkit.errors import InputError
from cnnkit.models import create_model, list_models
from cnnkit.models.resnet_cifar import _PadShortcut

# He et al. 2016, Table 6: parameters of the CIFAR-10 ResNets (option A shortcuts, width 16)
PAPER_PARAMS_M = {20: 0.27, 32: 0.46, 44: 0.66, 56: 0.85, 110: 1.7}


@pytest.mark.parametrize("depth", sorted(PAPER_PARAMS_M))
def test_parameters_and_depth_match_the_paper(depth):
    with torch.device("meta"):
        model = create_model(f"resnet{depth}_cifar")
    n = sum(p.numel() for p in model.parameters())
    assert round(n / 1e6, 2 if depth < 110 else 1) == PAPER_PARAMS_M[depth]
    weighted = [m for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    assert len(weighted) == depth  # option A adds no layer: depth counts every weighted layer
    if f"plain{depth}_cifar" in list_models():
        with torch.device("meta"):
            plain = create_model(f"plain{depth}_cifar")
        assert {k: v.shape for k, v in plain.state_dict().items()} == {
            k: v.shape for k, v in model.state_dict().items()}


def test_option_a_shortcut_against_a_manual_loop():
    x = torch.randn(2, 3, 6, 6)
    out = _PadShortcut(3, 8, 2)(x)
    want = torch.zeros(2, 8, 3, 3)
    for b in range(2):
        for c in range(3):
            for i in range(3):
                for j in range(3):
                    want[b, c + 2, i, j] = x[b, c, 2 * i, 2 * j]  # 5 new channels: 2 zeros before, 3 after
    assert torch.equal(out, want)


def _branch(block, x):
    y = F.relu(F.batch_norm(F.conv2d(x, block.conv1.weight, stride=block.conv1.stride, padding=1),
                            block.bn1.running_mean, block.bn1.running_var, block.bn1.weight, block.bn1.bias))
    return F.batch_norm(F.conv2d(y, block.conv2.weight, padding=1), block.bn2.running_mean, block.bn2.running_var,
                        block.bn2.weight, block.bn2.bias)


def test_residual_and_plain_blocks_against_functional_computation():
    torch.manual_seed(0)
    res = create_model("resnet20_cifar", width=4).eval()
    plain = create_model("plain20_cifar", width=4).eval()
    plain.load_state_dict(res.state_dict())  # same names, same shapes: the same weights in both
    x = torch.randn(2, 4, 8, 8)
    with torch.no_grad():
        for name in ("layer1.1", "layer2.0"):  # an identity shortcut and a subsampling one
            rb, pb = res.get_submodule(name), plain.get_submodule(name)
            # layer1.1 keeps 4 channels; layer2.0 halves the size and goes to 8 channels (2 zero ones each side)
            shortcut = x if name == "layer1.1" else F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, 2, 2))
            assert torch.allclose(rb(x), F.relu(_branch(rb, x) + shortcut), atol=1e-5)
            assert torch.allclose(pb(x), F.relu(_branch(pb, x)), atol=1e-5)


def test_backbone_contract():
    model = create_model("resnet32_cifar", num_classes=7, in_chans=1, width=4).eval()
    x = torch.randn(2, 1, 32, 32)
    stages = model.forward_stages(x)
    assert [s.shape[1] for s in stages] == model.stage_channels == model.out_channels == [4, 8, 16]
    assert [s.shape[-1] for s in stages] == [32, 16, 8]
    with torch.no_grad():
        assert torch.allclose(model(x), model.forward_head(model.forward_features(x)))
        assert model.forward_head(stages[-1], pre_logits=True).shape == (2, model.num_features)
    model.reset_classifier(3)
    assert model(x).shape == (2, 3) and model.get_classifier().out_features == 3
    model.reset_classifier(0)
    assert model(x).shape == (2, 16)


def test_options_and_errors():
    assert sum(p.numel() for p in create_model("resnet20_cifar", shortcut="B").parameters()) > 269_722
    assert create_model("plain20_cifar", norm="none").conv1.bias is not None
    with pytest.raises(InputError, match="6n \\+ 2"):
        from cnnkit.models.resnet_cifar import CifarResNet

        CifarResNet(21)
    with pytest.raises(InputError, match="shortcut"):
        create_model("resnet20_cifar", shortcut="C")
    with pytest.raises(InputError, match="norm"):
        create_model("resnet20_cifar", norm="layer")


# -- the experiment of the tour (s070): direction of the effect ---------------------------------------------------


def _digits_batch(n=64):
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.tensor(d.images[:n], dtype=torch.float32)[:, None] / 16.0
    x = F.interpolate(x, size=(16, 16), mode="bilinear", align_corners=False)
    return TensorDataset((x - x.mean()) / x.std(), torch.tensor(d.target[:n]))


@pytest.mark.parametrize("seed", [0, 1])
def test_plain56_gradients_are_far_from_balanced_resnet56_ones_are_not(seed):
    from cnnkit.tour.sections.s070_resnet_vs_plain import edge_ratio, init_grad_norms

    data = _digits_batch()
    # with BatchNorm the plain net's gradients grow towards the input; the ResNet's stay within a small factor
    plain = edge_ratio(init_grad_norms("plain56_cifar", data, seed=seed, batches=1))
    res = edge_ratio(init_grad_norms("resnet56_cifar", data, seed=seed, batches=1))
    assert plain > 30 and res < 15 and plain > 10 * res
    # without BatchNorm (PyTorch's default init) the plain net's gradients vanish near the input
    plain_nobn = init_grad_norms("plain56_cifar", data, seed=seed, batches=1, norm="none", init="default")
    res_nobn = init_grad_norms("resnet56_cifar", data, seed=seed, batches=1, norm="none", init="default")
    assert edge_ratio(plain_nobn) < 1e-6 < 0.05 < edge_ratio(res_nobn)
    assert np.all(np.isfinite(plain_nobn)) and np.all(np.isfinite(res_nobn))


@pytest.mark.slow
def test_plain56_trains_worse_than_resnet56():
    from cnnkit.tour.sections.s070_resnet_vs_plain import load_digits, train_one

    train, _ = load_digits(0)
    plain = train_one("plain56_cifar", train, None, epochs=3, seed=0)
    res = train_one("resnet56_cifar", train, None, epochs=3, seed=0)
    assert plain.train_loss > res.train_loss + 0.5  # measured: 2.13 vs 0.34 (seeds 1, 2: 1.99 vs 0.18, 2.13 vs 0.51)


def test_tour_section_quick(tmp_path):
    from cnnkit.tour import run_tour

    index, failed = run_tour(tmp_path, only=["s070_resnet_vs_plain"], quick=True)
    assert not failed, index.read_text()[-2000:]
    text = index.read_text()
    # the degradation claim follows the run's numbers: either the plain network ended worse, or quick mode says why not
    assert "the residual network trains further" in text or "quick mode (1 epoch on 320 images)" in text
    for name in ("training-loss", "gradient-norms"):
        assert (tmp_path / f"why-residual-networks-plain-vs-resnet-{name}.png").stat().st_size > 10_000

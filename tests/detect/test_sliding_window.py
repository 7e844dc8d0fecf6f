"""Sliding windows: the convolutional form gives every window the naive loop's numbers."""

from __future__ import annotations

import pytest
import torch

from cnnkit.detect.sliding_window import (
    WindowClassifier,
    convolutional_sliding_window,
    course_window_net,
    naive_sliding_window,
    network_stride,
    to_convolutional,
    window_positions,
)


def test_course_net_14_to_1_gives_2x2_on_16():
    net = course_window_net().eval()
    conv = to_convolutional(net).eval()
    assert net(torch.randn(1, 3, 14, 14)).shape == (1, 4)
    assert conv(torch.randn(1, 3, 14, 14)).shape == (1, 4, 1, 1)
    assert conv(torch.randn(1, 3, 16, 16)).shape == (1, 4, 2, 2)
    assert conv(torch.randn(1, 3, 28, 28)).shape == (1, 4, 8, 8)  # the curriculum's 28x28 -> 8x8 too
    assert network_stride(net.features) == 2


def test_course_net_16x16_each_output_is_its_window():
    torch.manual_seed(1)
    net = course_window_net().eval()
    conv = to_convolutional(net).eval()
    image = torch.randn(3, 16, 16)
    out = conv(image[None])[0]  # (4, 2, 2)
    for i in range(2):
        for j in range(2):  # output (i, j) = the 14x14 window whose corner is (2i, 2j)
            crop = image[:, 2 * i:2 * i + 14, 2 * j:2 * j + 14]
            torch.testing.assert_close(out[:, i, j], net(crop[None])[0], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("size,window,convs", [((40, 52), 14, ((16, 5),)), ((64, 64), 32, ((8, 5), (16, 3)))])
def test_naive_equals_convolutional_for_every_window(size, window, convs):
    torch.manual_seed(0)
    net = WindowClassifier(window=window, convs=convs, hidden=(32,), num_classes=3).eval()
    conv = to_convolutional(net).eval()
    stride = network_stride(net.features)
    image = torch.rand(3, *size)
    naive, nboxes = naive_sliding_window(net, image, window=window, stride=stride, batch_size=7)
    fast, fboxes = convolutional_sliding_window(conv, image, window=window, stride=stride)
    assert naive.shape == fast.shape
    assert len(window_positions(size, window, stride)) == naive.shape[0] * naive.shape[1]
    torch.testing.assert_close(fast, naive, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(fboxes, nboxes)


def test_one_window_at_a_time_equals_batched():
    net = course_window_net().eval()
    image = torch.rand(3, 20, 18)
    a, _ = naive_sliding_window(net, image, window=14, stride=2, batch_size=1)
    b, _ = naive_sliding_window(net, image, window=14, stride=2, batch_size=100)
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_window_larger_than_image_is_one_clear_error():
    from cnnkit.errors import InputError

    with pytest.raises(InputError, match="larger than the image"):
        window_positions((10, 10), 14, 2)

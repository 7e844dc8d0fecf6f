"""The shared layers the zoo is built from: ConvBnAct and the residual blocks.

Each block is compared with a functional reference written from the definition (explicit strides and paddings,
only the weights taken from the module), on random inputs with random BatchNorm statistics, in eval mode.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from cnnkit.errors import InputError, UnknownNameError
from cnnkit.layers.conv_bn_act import ConvBnAct
from cnnkit.layers.residual import ConvolutionalBlock, IdentityBlock, PlainBlock


def _randomise_norms(module: nn.Module) -> nn.Module:
    """Random BN scale, shift and running statistics, so that a reference that skips a BN cannot pass."""
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            with torch.no_grad():
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_()
                m.running_mean.normal_()
                m.running_var.uniform_(0.5, 2.0)
    return module.eval()


def _bn(x: torch.Tensor, bn: nn.BatchNorm2d) -> torch.Tensor:
    shape = (1, -1, 1, 1)
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    return (x - bn.running_mean.view(shape)) * scale.view(shape) + bn.bias.view(shape)


def _conv(x, conv: nn.Conv2d, stride: int, padding: int) -> torch.Tensor:
    return F.conv2d(x, conv.weight, conv.bias, stride=stride, padding=padding)


def _main_path(block, x: torch.Tensor, stride: int, stride_on: str = "middle") -> torch.Tensor:
    """F(x) from the definition: basic = BN(conv3x3(relu(BN(conv3x3_s(x))))), bottleneck = 1x1, 3x3, 1x1."""
    if len(block.filters) == 2:
        h = F.relu(_bn(_conv(x, block.conv1, stride, 1), block.bn1))
        return _bn(_conv(h, block.conv2, 1, 1), block.bn2)
    s1, s2 = (stride, 1) if stride_on == "first" else (1, stride)
    h = F.relu(_bn(_conv(x, block.conv1, s1, 0), block.bn1))
    h = F.relu(_bn(_conv(h, block.conv2, s2, 1), block.bn2))
    return _bn(_conv(h, block.conv3, 1, 0), block.bn3)


@pytest.mark.parametrize("filters", [[8, 8], [4, 4, 8]], ids=["basic", "bottleneck"])
def test_identity_block_is_relu_of_residual_plus_input(filters):
    block = _randomise_norms(IdentityBlock(8, filters))
    x = torch.randn(2, 8, 9, 9)
    with torch.no_grad():
        out = block(x)
        torch.testing.assert_close(out, F.relu(_main_path(block, x, 1) + x))
        torch.testing.assert_close(block.residual(x), _main_path(block, x, 1))
        torch.testing.assert_close(block.shortcut(x), x)
    assert out.shape == x.shape


@pytest.mark.parametrize("filters", [[8, 8], [4, 4, 8]], ids=["basic", "bottleneck"])
def test_identity_block_with_zeroed_branch_is_relu_of_input(filters):
    block = _randomise_norms(IdentityBlock(8, filters))
    block.zero_init_last()
    assert torch.all(block.last_norm.weight == 0)
    with torch.no_grad():
        block.last_norm.bias.zero_()  # scale 0 and shift 0: F(x) = 0 exactly
        x = torch.randn(2, 8, 7, 7)
        torch.testing.assert_close(block(x), F.relu(x))


@pytest.mark.parametrize("stride_on", ["middle", "first"])
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("filters", [[6, 12], [4, 4, 16]], ids=["basic", "bottleneck"])
def test_convolutional_block_projects_the_shortcut(filters, stride, stride_on):
    block = _randomise_norms(ConvolutionalBlock(5, filters, 3, stride, stride_on=stride_on))
    x = torch.randn(2, 5, 11, 10)
    with torch.no_grad():
        out = block(x)
        projection = _bn(_conv(x, block.downsample[0], stride, 0), block.downsample[1])
        torch.testing.assert_close(out, F.relu(_main_path(block, x, stride, stride_on) + projection))
    # a 3x3 "same" convolution with stride s and a 1x1 one with stride s both give ceil(H / s)
    assert out.shape == (2, filters[-1], -(-11 // stride), -(-10 // stride))


def test_stride_placement_in_bottlenecks():
    middle = ConvolutionalBlock(8, [4, 4, 16], stride=2)
    first = ConvolutionalBlock(8, [4, 4, 16], stride=2, stride_on="first")
    assert (middle.conv1.stride, middle.conv2.stride) == ((1, 1), (2, 2))
    assert (first.conv1.stride, first.conv2.stride) == ((2, 2), (1, 1))
    assert ConvolutionalBlock(8, [4, 4]).conv1.stride == (2, 2)  # the course's default s=2


def test_blocks_keep_torchvision_parameter_names():
    keys = set(ConvolutionalBlock(8, [4, 4, 16]).state_dict())
    expected = {f"{m}.{p}" for m in ("conv1", "conv2", "conv3") for p in ("weight",)}
    expected |= {f"{m}.{p}" for m in ("bn1", "bn2", "bn3", "downsample.1")
                 for p in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")}
    expected |= {"downsample.0.weight"}
    assert keys == expected
    assert {k.split(".")[0] for k in IdentityBlock(8, [8, 8]).state_dict()} == {"conv1", "bn1", "conv2", "bn2"}


def test_course_block_options():
    """The course's blocks: biases on every convolution, a kernel size `f` other than 3, Keras' BN epsilon."""
    import functools

    block = ConvolutionalBlock(3, [4, 4, 8], 5, 2, stride_on="first", bias=True,
                               norm_layer=functools.partial(nn.BatchNorm2d, eps=1e-3))
    assert all(m.bias is not None for m in block.modules() if isinstance(m, nn.Conv2d))
    assert block.conv2.kernel_size == (5, 5) and block.conv2.padding == (2, 2)
    assert block.bn1.eps == 1e-3 and block.downsample[1].eps == 1e-3
    assert block(torch.randn(1, 3, 8, 8)).shape == (1, 8, 4, 4)


def test_plain_block_has_no_shortcut():
    block = _randomise_norms(PlainBlock(6, [4, 4, 10], stride=2))
    x = torch.randn(2, 6, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(block(x), F.relu(_main_path(block, x, 2)))
    assert not hasattr(block, "downsample") and not hasattr(block, "shortcut")


def test_block_argument_errors():
    with pytest.raises(InputError, match="filters\\[-1\\]"):
        IdentityBlock(8, [4, 4, 16])
    with pytest.raises(InputError, match="filters must be"):
        ConvolutionalBlock(8, [4])
    with pytest.raises(InputError, match="odd"):
        IdentityBlock(8, [8, 8], 4)
    with pytest.raises(InputError, match="stride_on"):
        ConvolutionalBlock(8, [4, 4, 8], stride_on="last")


@pytest.mark.parametrize("kernel, stride, dilation", [(3, 1, 1), (5, 2, 1), (3, 1, 2), (1, 1, 1)])
def test_conv_bn_act_matches_reference(kernel, stride, dilation):
    layer = _randomise_norms(ConvBnAct(4, 6, kernel, stride, dilation=dilation, act_layer="relu6"))
    x = torch.randn(2, 4, 13, 12)
    pad = dilation * (kernel - 1) // 2
    with torch.no_grad():
        ref = F.conv2d(x, layer[0].weight, None, stride, pad, dilation)
        ref = torch.clamp(_bn(ref, layer[1]), 0, 6)
        torch.testing.assert_close(layer(x), ref)
    if stride == 1:  # "same" padding by default
        assert layer(x).shape[-2:] == x.shape[-2:]
    assert layer[0].bias is None  # a norm makes the bias redundant


def test_conv_bn_act_layout_and_options():
    assert list(ConvBnAct(3, 8).state_dict()) == [
        "0.weight", "1.weight", "1.bias", "1.running_mean", "1.running_var", "1.num_batches_tracked"]
    bare = ConvBnAct(3, 8, 1, norm_layer=None, act_layer=None)
    assert len(bare) == 1 and bare[0].bias is not None
    no_norm = ConvBnAct(3, 8, norm_layer="none", act_layer=nn.SiLU)
    assert isinstance(no_norm[1], nn.SiLU) and no_norm[1].inplace
    assert isinstance(ConvBnAct(3, 8, act_layer="gelu")[2], nn.GELU)  # GELU takes no `inplace`
    depthwise = ConvBnAct(8, 8, groups=8)
    assert depthwise[0].weight.shape == (8, 1, 3, 3) and depthwise.out_channels == 8
    with pytest.raises(UnknownNameError, match="unknown activation layer 'relu7'"):
        ConvBnAct(3, 8, act_layer="relu7")

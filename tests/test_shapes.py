"""Shape arithmetic against brute force (enumerated windows, traced pixel sets) and against PyTorch layers."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from torch import nn

from cnnkit import shapes
from cnnkit.errors import InputError

SETTINGS = settings(max_examples=60, deadline=None)


@SETTINGS
@given(st.integers(1, 40), st.integers(1, 9), st.integers(1, 5), st.integers(0, 4))
def test_conv_output_size_counts_the_windows(n, f, s, p):
    starts = [i for i in range(0, n + 2 * p) if i + f <= n + 2 * p and i % s == 0]  # every window that fits
    if not starts:
        with pytest.raises(InputError, match="empty"):
            shapes.conv_output_size(n, f, stride=s, pad=p)
    else:
        assert shapes.conv_output_size(n, f, stride=s, pad=p) == len(starts)


@SETTINGS
@given(st.integers(1, 12), st.integers(1, 5), st.integers(1, 4), st.integers(0, 3), st.integers(0, 3))
def test_conv_transpose_output_size_inverts_conv(n, f, s, p, op):
    assume(op < s and (n - 1) * s - 2 * p + f + op >= 1)
    out = shapes.conv_transpose_output_size(n, f, s, p, op)
    # A strided conv maps every one of the s sizes out = ... + op back to n: that is what output_padding picks.
    assert shapes.conv_output_size(out, f, stride=s, pad=p) == n
    layer = nn.ConvTranspose2d(1, 1, f, stride=s, padding=p, output_padding=op)
    assert layer(torch.zeros(1, 1, n, n)).shape[-1] == out


@pytest.mark.parametrize("f", [1, 3, 5, 7, 11])
def test_same_padding_keeps_the_size(f):
    for n in (f, f + 1, 17, 32):
        assert shapes.conv_output_size(n, f, stride=1, pad=shapes.same_padding(f)) == n


def test_same_padding_of_even_filter_is_refused():
    with pytest.raises(InputError, match="even filter size 4"):
        shapes.same_padding(4)


@SETTINGS
@given(st.integers(1, 40), st.integers(1, 7), st.integers(1, 4))
def test_tf_same_padding_gives_ceil_n_over_s(n, f, s):
    before, after = shapes.tf_same_padding(n, f, s)
    assert 0 <= before <= after <= before + 1
    assert (n + before + after - f) // s + 1 == math.ceil(n / s)


def _brute_receptive_field(layers):
    """Input pixels feeding output unit 0 of the last layer, traced back layer by layer."""
    seen = {0}
    for f, s in reversed(layers):
        seen = {s * k + i for k in seen for i in range(f)}
    return max(seen) - min(seen) + 1


@SETTINGS
@given(st.lists(st.tuples(st.integers(1, 6), st.integers(1, 3)), min_size=1, max_size=6))
def test_receptive_field_equals_traced_pixels(layers):
    result = shapes.receptive_field(layers)
    for k in range(len(layers)):
        r, j = result[k]
        assert r == _brute_receptive_field(layers[: k + 1])
        assert j == math.prod(s for _, s in layers[: k + 1])


def test_course_example_lenet5_table():
    rows = shapes.trace((32, 32, 3), "conv5x5s1p0c8 pool2 conv5x5s1c16 pool2 fc120 fc84 fc10".split())
    assert [r.shape for r in rows] == [(32, 32, 3), (28, 28, 8), (14, 14, 8), (10, 10, 16), (5, 5, 16), (120,),
                                       (84,), (10,)]
    assert [r.size for r in rows] == [3072, 6272, 1568, 1600, 400, 120, 84, 10]
    assert [r.params for r in rows] == [0, 608, 0, 3216, 0, 48120, 10164, 850]


def _torch_layer(layer: shapes.Layer, c_in: int, n_in: int):
    f, s, p = layer.f, layer.stride, layer.pad
    if layer.kind == "conv":
        return nn.Conv2d(c_in, layer.channels or c_in, f, stride=s, padding=p)
    if layer.kind == "tconv":
        return nn.ConvTranspose2d(c_in, layer.channels or c_in, f, stride=s, padding=p,
                                  output_padding=layer.output_padding)
    if layer.kind == "maxpool":
        return nn.MaxPool2d(f, stride=s, padding=p)
    if layer.kind == "avgpool":
        return nn.AvgPool2d(f, stride=s, padding=p)
    if layer.kind == "gap":
        return nn.AdaptiveAvgPool2d(1)
    return nn.Sequential(nn.Flatten(), nn.Linear(n_in, layer.channels))


specs = st.one_of(
    st.builds(lambda f, s, p, c: f"conv{f}s{s}p{p}c{c}", st.integers(1, 5), st.integers(1, 3), st.integers(0, 2),
              st.integers(1, 6)),
    st.builds(lambda f, g, c: f"conv{f}x{g}c{c}", st.integers(1, 4), st.integers(1, 4), st.integers(1, 6)),
    st.builds(lambda f: f"conv{f}psame", st.sampled_from([1, 3, 5])),
    st.builds(lambda k, f, s: f"{k}pool{f}s{s}", st.sampled_from(["max", "avg", ""]), st.integers(1, 3),
              st.integers(1, 3)),
    st.builds(lambda f, s, c: f"tconv{f}s{s}o{s - 1}c{c}", st.integers(1, 4), st.integers(1, 3), st.integers(1, 4)),
    st.just("gap"),
)


@settings(max_examples=40, deadline=None)
@given(st.integers(8, 24), st.integers(1, 3), st.lists(specs, min_size=1, max_size=4), st.booleans())
def test_trace_matches_torch_layers(n, c, specs_, fc):
    layers = [shapes.parse_layer(t) for t in specs_ + (["fc7"] if fc else [])]
    try:
        rows = shapes.trace((n, n + 1, c), layers)
    except InputError:
        assume(False)  # an empty output somewhere; refusing it is tested elsewhere
    x = torch.zeros(1, c, n, n + 1)
    for layer, row in zip(layers, rows[1:], strict=True):
        module = _torch_layer(layer, x.shape[1], x[0].numel())
        x = module(x)
        want = (x.shape[2], x.shape[3], x.shape[1]) if x.dim() == 4 else (x.shape[1],)
        assert row.shape == want, layer.spec
        assert row.params == sum(p.numel() for p in module.parameters()), layer.spec


@pytest.mark.parametrize(("spec", "want"), [
    ("conv5x5s1p0c6", shapes.Layer("conv5x5s1p0c6", "conv", (5, 5), 1, 0, 0, 6)),
    ("CONV3psamec64", shapes.Layer("CONV3psamec64", "conv", (3, 3), 1, 1, 0, 64)),
    ("conv3x5s2", shapes.Layer("conv3x5s2", "conv", (3, 5), 2, 0, 0, None)),
    ("pool2", shapes.Layer("pool2", "maxpool", (2, 2), 2, 0)),
    ("avgpool3s1p1", shapes.Layer("avgpool3s1p1", "avgpool", (3, 3), 1, 1)),
    ("tconv2s2o1c8", shapes.Layer("tconv2s2o1c8", "tconv", (2, 2), 2, 0, 1, 8)),
    ("gap", shapes.Layer("gap", "gap")),
    ("fc120", shapes.Layer("fc120", "fc", channels=120)),
])
def test_parse_layer(spec, want):
    assert shapes.parse_layer(spec) == want


@pytest.mark.parametrize(("spec", "words"), [
    ("pol2", "cannot read layer spec 'pol2'"),
    ("conv", "cannot read"),
    ("conv3s0", "stride"),
    ("conv0", "filter size"),
    ("conv4psame", "odd filter"),
    ("fc0", "unit count"),
    ("conv3c", "cannot read"),
])
def test_bad_layer_specs_are_refused(spec, words):
    with pytest.raises(InputError, match=words):
        shapes.parse_layer(spec)


@pytest.mark.parametrize(("call", "words"), [
    (lambda: shapes.conv_output_size(5, 3, stride=0, pad=0), "stride must be at least 1"),
    (lambda: shapes.conv_output_size(5, 3, stride=1, pad=-1), "padding must be at least 0"),
    (lambda: shapes.conv_output_size(5, 8, stride=1, pad=1), "larger than the padded input"),
    (lambda: shapes.conv_output_size(5, 3.0, stride=1, pad=0), "whole number"),
    (lambda: shapes.pool_output_size(0, 2), "input size"),
    (lambda: shapes.conv_transpose_output_size(2, 3, 2, 0, 2), "output_padding"),
    (lambda: shapes.conv_transpose_output_size(1, 1, 1, 1), "crops the whole"),
    (lambda: shapes.receptive_field([(3, 1), (3, 0)]), "stride of layer 2"),
    (lambda: shapes.trace((8, 8, 3), ["fc10", "conv3"]), "flattening"),
    (lambda: shapes.trace((8, 8, 3), ["conv3", "conv9"]), "layer 2"),
])
def test_invalid_configurations_raise_input_error(call, words):
    with pytest.raises(InputError, match=words):
        call()


def test_cli_prints_each_layer(run_cli):
    code, out, err = run_cli("shapes", "--input", "32x32x3", "conv5x5s1p0c6", "pool2", "conv5x5c16", "pool2")
    assert code == 0, err
    lines = out.splitlines()
    for spec, shape, rf in [("conv5x5s1p0c6", "28x28x6", "5"), ("pool2", "14x14x6", "6"), ("conv5x5c16", "10x10x16",
                                                                                            "14")]:
        assert any(line.split()[:2] == [spec, shape] and rf in line.split() for line in lines), (spec, out)
    assert lines[-1].split() == ["total", f"{456 + 2416:,}"]


@pytest.mark.parametrize(("args", "words"), [
    (["--input", "32x32x3", "conv5x5", "blah"], "'blah'"),
    (["--input", "8x8x3", "conv9"], "conv9"),
    (["--input", "8x8", "conv3"], "HxWxC"),
])
def test_cli_bad_spec_is_one_line_exit_2(run_cli, args, words):
    code, _, err = run_cli("shapes", *args)
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and words in err and "Traceback" not in err


def test_cli_help_documents_the_syntax(run_cli):
    code, out, _ = run_cli("shapes", "--help")
    assert code == 0
    assert "conv<F>" in out and "pool<F>" in out and "fc<N>" in out


def test_conv_output_size_takes_stride_and_pad_by_name_only():
    """The README once gave the order (n, f, pad, stride): positional arguments are now refused, not swapped."""
    assert shapes.conv_output_size(32, 5, stride=1, pad=2) == 32
    with pytest.raises(TypeError):
        shapes.conv_output_size(32, 5, 2, 1)

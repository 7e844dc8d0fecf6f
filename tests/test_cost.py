"""cnnkit.cost: the lessons' formulas, cross-checked against `summary()` of real nn.Conv2d layers."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn as nn

from cnnkit.cost import (
    bottleneck_cost,
    bottleneck_layers,
    conv_macs,
    conv_params,
    conv_vs_fully_connected,
    lessons,
    measured_macs,
    separable_cost,
    separable_layers,
)
from cnnkit.errors import InputError
from cnnkit.summary import summary


def test_course_bottleneck_numbers_and_real_layers():
    b = bottleneck_cost()
    assert b.direct_macs == 120_422_400
    assert b.bottleneck_macs == 12_443_648 == 2_408_448 + 10_035_200
    direct, through = bottleneck_layers()  # real layers with real values, run on the CPU
    assert measured_macs(direct, (192, 28, 28)) == b.direct_macs
    assert measured_macs(through, (192, 28, 28)) == b.bottleneck_macs
    assert summary(through, (192, 28, 28)).rows[-1].output_shape == (32, 28, 28)


def test_course_separable_example():
    s = separable_cost()
    assert (s.standard_macs, s.depthwise_macs, s.pointwise_macs) == (2160, 432, 240)
    assert s.ratio == pytest.approx(1 / 5 + 1 / 9, abs=1e-12)


@pytest.mark.parametrize("seed", range(8))
def test_separable_ratio_measured_equals_formula(seed):
    rng = np.random.default_rng(seed)
    c, cout, f = int(rng.integers(1, 17)), int(rng.integers(1, 65)), int(rng.choice([1, 3, 5, 7]))
    h, w = int(rng.integers(f, f + 12)), int(rng.integers(f, f + 12))
    pad = int(rng.integers(0, f // 2 + 1))
    standard, separable = separable_layers((c, h, w), cout, f, padding=pad)
    measured = measured_macs(separable, (c, h, w)) / measured_macs(standard, (c, h, w))
    s = separable_cost((c, h, w), cout, f, padding=pad)
    assert measured == pytest.approx(s.ratio, rel=1e-12)
    assert measured == pytest.approx(1 / cout + 1 / f**2, rel=1e-12)
    assert s.standard_macs == measured_macs(standard, (c, h, w))


@pytest.mark.parametrize("seed", range(8))
def test_conv_macs_and_params_formulas_match_real_layers(seed):
    rng = np.random.default_rng(100 + seed)
    groups = int(rng.choice([1, 2, 4]))
    c, cout = groups * int(rng.integers(1, 5)), groups * int(rng.integers(1, 5))
    f, stride, pad = int(rng.choice([1, 3, 5])), int(rng.integers(1, 4)), int(rng.integers(0, 3))
    h, w = int(rng.integers(f, 20)), int(rng.integers(f, 20))
    layer = nn.Conv2d(c, cout, f, stride=stride, padding=pad, groups=groups)
    y = layer(torch.zeros(1, c, h, w))
    macs = conv_macs((c, h, w), cout, f, padding=pad, stride=stride, groups=groups)
    assert macs == measured_macs(layer, (c, h, w))
    # the slow, obvious count: one multiply per output value per weight it sees
    assert macs == y.numel() * (c // groups) * f * f
    assert conv_params(c, cout, f, groups=groups) == sum(p.numel() for p in layer.parameters())


def test_conv_vs_fully_connected_course_example():
    why = conv_vs_fully_connected()
    assert why.out_shape == (6, 28, 28)
    assert why.conv_params == 456 == sum(p.numel() for p in nn.Conv2d(3, 6, 5).parameters())
    with torch.device("meta"):  # 14 million parameters: sizes only, no memory
        fc = nn.Linear(3072, 4704)
    assert why.fc_params == sum(p.numel() for p in fc.parameters()) == 14_455_392
    assert why.conv_inputs_per_output == 75 and why.uses_per_weight == 784
    assert why.ratio > 30_000


def test_errors():
    with pytest.raises(InputError, match="odd"):
        bottleneck_cost(f=4)
    with pytest.raises(InputError, match="larger than the padded input"):
        conv_macs((3, 4, 4), 8, 5)
    with pytest.raises(InputError, match="groups"):
        conv_macs((3, 8, 8), 8, 3, groups=2)


def test_lessons_dict_measured_equals_formula():
    d = lessons(in_shape=(64, 56, 56), out_channels=128, f=3, bottleneck_channels=32)
    assert d["bottleneck"]["measured_direct_macs"] == d["bottleneck"]["direct_macs"]
    assert d["bottleneck"]["measured_bottleneck_macs"] == d["bottleneck"]["bottleneck_macs"]
    assert d["separable"]["measured_separable_macs"] == d["separable"]["separable_macs"]
    assert d["separable"]["ratio"] == pytest.approx(1 / 128 + 1 / 9)


def test_cli_cost(run_cli):
    code, out, _ = run_cli("cost")
    assert code == 0
    for n in ("456", "14,455,392", "120,422,400", "12,443,648", "2,160", "672", "0.3111"):
        assert n in out
    code, out, _ = run_cli("cost", "--input", "56x56x64", "--out-channels", "128", "--filter", "3", "--json")
    assert code == 0
    assert json.loads(out)["separable"]["formula_ratio"] == pytest.approx(1 / 128 + 1 / 9)
    code, _, err = run_cli("cost", "--filter", "4")
    assert code == 2 and "odd" in err and len(err.strip().splitlines()) == 1

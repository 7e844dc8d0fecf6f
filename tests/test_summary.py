"""cnnkit.summary and `cnnkit summary`: layer rows and totals checked against independent counts."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode

from cnnkit.errors import InputError
from cnnkit.models import create_model
from cnnkit.summary import fc_equivalent_params, format_shape_hwc, summary

# The course's table: (activation size, parameters) of CONV1, POOL1, CONV2, POOL2, FC3, FC4, Softmax.
COURSE_TABLE = [(4704, 456), (1176, 0), (1600, 2416), (400, 0), (120, 48120), (84, 10164), (10, 850)]


def test_course_convnet_has_the_course_table():
    s = summary(create_model("course_convnet"))
    assert [(r.activation_size, r.params) for r in s.rows] == COURSE_TABLE
    assert [r.layer_type for r in s.rows] == ["Conv2d", "MaxPool2d"] * 2 + ["Linear"] * 3
    assert [r.shape_hwc for r in s.rows] == ["28x28x6", "14x14x6", "10x10x16", "5x5x16", "120", "84", "10"]
    assert s.input_shape == (3, 32, 32) and s.input_size == 3072
    assert s.total_params == 62006 == sum(p.numel() for p in create_model("course_convnet").parameters())
    # conv: positions x filters x 5*5*C_in; linear: in x out
    assert s.total_macs == 28 * 28 * 6 * 75 + 10 * 10 * 16 * 150 + 400 * 120 + 120 * 84 + 84 * 10


def test_fc_equivalent_of_the_course_conv():
    s = summary(create_model("course_convnet"))
    assert s.rows[0].fc_equivalent_params == 3072 * 4704 + 4704 == fc_equivalent_params(3072, 4704)
    assert s.rows[1].fc_equivalent_params is None  # pooling: not a weighted layer
    assert s.rows[4].fc_equivalent_params == s.rows[4].params  # a Linear layer is its own FC equivalent


def _random_stack(rng: np.random.Generator) -> tuple[nn.Sequential, tuple[int, int, int]]:
    """A random chain of Conv2d (grouped, depthwise, strided, dilated), ConvTranspose2d, pooling and Linear."""
    c, h = int(rng.integers(1, 4)) * 2, int(rng.integers(12, 20))
    shape = (c, h, h)
    layers: list[nn.Module] = []
    for _ in range(int(rng.integers(2, 5))):
        kind = rng.choice(["conv", "depthwise", "grouped", "transpose", "pool"])
        k = int(rng.choice([1, 3, 5]))
        if kind == "conv":
            out = 2 * int(rng.integers(1, 5))  # even, so a later groups=2 layer fits
            layers.append(nn.Conv2d(c, out, k, stride=int(rng.integers(1, 3)), padding=k // 2,
                                    dilation=int(rng.integers(1, 3)) if k == 3 else 1, bias=bool(rng.integers(2))))
        elif kind == "depthwise":
            out = c
            layers.append(nn.Conv2d(c, c, k, padding=k // 2, groups=c))
        elif kind == "grouped":
            out = c * int(rng.integers(1, 3))
            layers.append(nn.Conv2d(c, out, k, padding=k // 2, groups=2))
        elif kind == "transpose":
            out = 2 * int(rng.integers(1, 4))
            layers.append(nn.ConvTranspose2d(c, out, k, stride=2, padding=k // 2, output_padding=1, groups=2))
        else:
            out = c
            layers += [nn.ReLU(), nn.MaxPool2d(2, ceil_mode=True)]
        c = out
    layers += [nn.Flatten(), nn.LazyLinear(int(rng.integers(1, 20)))]
    model = nn.Sequential(*layers)
    model(torch.zeros(1, *shape))  # materialise the lazy Linear
    return model, shape


@pytest.mark.parametrize("seed", range(12))
def test_rows_match_flop_counter_and_real_outputs(seed):
    """Per layer: MACs against torch's own FLOP counter (2 FLOPs per MAC), activations against the real output."""
    model, shape = _random_stack(np.random.default_rng(seed))
    s = summary(model, shape, hide_elementwise=False)
    assert len(s.rows) == len(model)
    x = torch.randn(1, *shape)
    for row, layer in zip(s.rows, model, strict=True):
        with FlopCounterMode(display=False) as counter:
            y = layer(x)
        assert row.macs * 2 == counter.get_total_flops(), (row, layer)
        assert row.activation_size == y.numel()
        assert row.output_shape == tuple(y.shape[1:])
        assert row.params == sum(p.numel() for p in layer.parameters())
        x = y
    assert s.total_params == sum(p.numel() for p in model.parameters())
    assert s.total_macs == sum(r.macs for r in s.rows)


def test_conv1d_and_linear_on_sequences_are_counted():
    model = nn.Sequential(nn.Conv1d(4, 8, 3, groups=2), nn.Linear(14, 5))
    with FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, 4, 16))
    assert summary(model, (4, 16)).total_macs * 2 == counter.get_total_flops()


class _Odd(nn.Module):
    """A container with a bare parameter, a layer called twice, a frozen layer and a layer never called."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(1, 3, 1, 1))
        self.conv = nn.Conv2d(3, 3, 3, padding=1)
        self.frozen = nn.Conv2d(3, 4, 1)
        self.frozen.requires_grad_(False)
        self.unused = nn.Linear(7, 7)
        self.aux = nn.Linear(4 * 8 * 8, 2)

    def forward(self, x):
        x = self.conv(self.conv(x * self.scale))  # shared: parameters once, MACs twice
        y = self.frozen(x)
        if self.training:  # like an auxiliary classifier: only in training
            return y, self.aux(y.flatten(1))
        return y, {"pooled": y.mean((2, 3)), "none": None}


def test_totals_count_every_parameter_once():
    model = _Odd()
    s = summary(model, (3, 8, 8))
    assert s.total_params == sum(p.numel() for p in model.parameters())
    assert sum(r.params for r in s.rows) == s.total_params
    assert s.trainable_params == s.total_params - 16
    conv_rows = [r for r in s.rows if r.name == "conv"]
    assert len(conv_rows) == 2 and conv_rows[0].params == 84 and conv_rows[1].params == 0
    assert conv_rows[0].macs == conv_rows[1].macs == 8 * 8 * 3 * 27
    unreached = [r for r in s.rows if r.params and r.name.startswith("(")]
    assert unreached and unreached[0].params == 7 * 7 + 7 + 256 * 2 + 2
    root = [r for r in s.rows if r.name == ""]  # the root holds `scale`: its own row, several outputs
    assert root and root[0].params == 3 and root[0].activation_size == 4 * 64 + 4


def test_train_mode_is_restored():
    model = _Odd().train()
    model.frozen.eval()
    summary(model, (3, 8, 8))  # runs in eval mode, where the auxiliary head is skipped
    assert model.training and model.conv.training and not model.frozen.training


class _TupleLeaf(nn.Module):
    def forward(self, x):
        return x, x * 2


def test_leaf_layers_with_tuple_outputs():
    model = nn.Sequential(nn.Flatten(), nn.Unflatten(1, (4, 5)), nn.LSTM(5, 6, batch_first=True))
    s = summary(model, (20,))
    assert s.rows[-1].output_shape[0] == (4, 6)
    leaf = summary(_TupleLeaf(), (2, 3))
    assert leaf.rows[0].output_shape == ((2, 3), (2, 3)) and leaf.total_activations == 12
    assert format_shape_hwc(((6, 4, 5), (3,))) == "4x5x6, 3"


def test_global_random_state_untouched_and_meta_models():
    model = create_model("course_convnet")
    state = torch.random.get_rng_state()
    cpu = summary(model)
    assert torch.equal(state, torch.random.get_rng_state())
    with torch.device("meta"):
        meta = summary(create_model("course_convnet"))
    assert meta.to_dict() == cpu.to_dict()


def test_hidden_elementwise_rows_do_not_change_totals():
    model = create_model("course_convnet")
    shown = summary(model, hide_elementwise=False)
    assert [r.layer_type for r in shown.rows].count("ReLU") == 4
    assert "Flatten" in {r.layer_type for r in shown.rows}
    hidden = summary(model)
    assert (shown.total_params, shown.total_macs) == (hidden.total_params, hidden.total_macs)
    assert hidden.total_activations == sum(a for a, _ in COURSE_TABLE)


def test_bad_input_shapes():
    model = create_model("course_convnet")
    with pytest.raises(InputError, match="at least 1"):
        summary(model, (3, 0, 32))
    with pytest.raises(InputError, match="32x32"):
        summary(model, (3, 64, 64))
    with pytest.raises(InputError, match="default_input_size"):
        summary(nn.Linear(3, 4))


def test_to_dict_is_json_and_text_has_the_numbers():
    s = summary(create_model("course_convnet"), name="course_convnet")
    d = json.loads(json.dumps(s.to_dict()))
    assert [(r["activation_size"], r["params"]) for r in d["rows"]] == COURSE_TABLE
    assert d["rows"][0]["output_shape"] == [6, 28, 28] and d["rows"][0]["output_shape_hwc"] == "28x28x6"
    text = s.to_text(why=True)
    for a, p in COURSE_TABLE:
        assert f"{a:,}" in text and f"{p:,}" in text
    assert "14,455,392" in text and "62,006" in text


def test_course_convnet_keeps_the_backbone_contract():
    model = create_model("course_convnet", num_classes=7, in_chans=1)
    x = torch.randn(2, 1, 32, 32)
    s1, s2 = model.forward_stages(x)
    assert s1.shape == (2, 6, 14, 14) and s2.shape == (2, 16, 5, 5) and model.out_channels == [6, 16]
    assert model.forward_features(x).shape[1] == model.num_features
    assert model.forward_head(s2, pre_logits=True).shape == (2, 84)
    out = model(x)
    assert out.shape == (2, 7) and torch.isfinite(out).all()
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    model.reset_classifier(3)
    assert model(x).shape == (2, 3) and model.get_classifier() is model.fc5
    model.reset_classifier(0)
    assert model(x).shape == (2, 84)


def test_cli_summary_prints_the_course_table(run_cli):
    code, out, err = run_cli("summary", "course_convnet")
    assert code == 0, err
    lines = [line for line in out.splitlines() if line.startswith(("stage", "pre_logits", "fc5"))]
    assert len(lines) == 7
    for line, (act, params) in zip(lines, COURSE_TABLE, strict=True):
        cols = line.split()
        assert cols[3] == f"{act:,}" and cols[4] == f"{params:,}"


def test_cli_summary_json_why_all_and_lessons(run_cli):
    code, out, _ = run_cli("summary", "course_convnet", "--json", "--input", "32x32x1")
    assert code == 0
    d = json.loads(out)
    assert d["input_shape"] == [1, 32, 32] and d["rows"][0]["params"] == 6 * 25 + 6 and len(d["rows"]) == 7
    code, out, _ = run_cli("summary", "course_convnet", "--why", "--all")
    assert code == 0 and "14,455,392" in out and "ReLU" in out
    code, out, _ = run_cli("summary", "--lessons")
    assert code == 0 and "120,422,400" in out and "12,443,648" in out


def test_cli_summary_of_a_model_file(run_cli, tmp_path):
    from cnnkit.checkpoint import save_model_file

    path = tmp_path / "net.safetensors"
    save_model_file(path, create_model("course_convnet", num_classes=4),
                    {"model": "course_convnet", "model_kwargs": {"num_classes": 4}, "input_size": [3, 32, 32]})
    code, out, err = run_cli("summary", path)
    assert code == 0, err
    assert "61,496" in out  # 62,006 - 850 + (84 * 4 + 4)


@pytest.mark.parametrize(
    "args, expected",
    [
        (("summary", "course_convnetx"), "unknown model"),
        (("summary", "course_convnet", "--input", "0x32x3"), "0x32x3"),
        (("summary", "course_convnet", "--input", "64x64x3"), "32x32"),
        (("summary", "course_convnet", "--input", "32x32"), "HxWxC"),
        (("summary",), "model name"),
    ],
)
def test_cli_summary_errors_are_one_line(run_cli, args, expected):
    code, _, err = run_cli(*args)
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and expected in err and "Traceback" not in err


def test_tour_section_quick(tmp_path):
    from cnnkit.tour import run_tour

    index, failed = run_tour(tmp_path, only=["s030_summary"], quick=True)
    assert failed == []
    pngs = sorted(p.name for p in tmp_path.glob("*.png"))
    assert pngs and all((tmp_path / p).stat().st_size > 1000 for p in pngs)
    page = index.read_text()
    assert "4,704" in page and "48,120" in page and "120,422,400" in page

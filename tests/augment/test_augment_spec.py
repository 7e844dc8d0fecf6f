"""Augmentation specs, build_transform, and use with data sets and Samples."""

import numpy as np
import pytest
import torch

from cnnkit.augment import (
    AugmentSample,
    Compose,
    HorizontalFlip,
    RandomCrop,
    Sample,
    build_transform,
    list_ops,
    parse_spec,
)
from cnnkit.errors import InputError, UnknownNameError


def test_parse_spec_names_values_aliases_presets():
    assert parse_spec("flip, rotate=30,COLOUR") == [("flip", None), ("rotate", 30.0), ("color", None)]
    assert parse_spec(["hflip", "warp=0.1"]) == [("flip", None), ("elastic", 0.1)]
    assert parse_spec("default") == [("flip", None), ("crop", None)]
    assert parse_spec("none") == parse_spec(None) == parse_spec("") == []


def test_unknown_op_lists_the_known_ones():
    with pytest.raises(UnknownNameError) as e:
        parse_spec("flip,rotat")
    msg = str(e.value)
    assert "rotat" in msg and "did you mean rotate" in msg and all(op in msg for op in list_ops())
    with pytest.raises(InputError, match="number"):
        parse_spec("rotate=lots")
    with pytest.raises(InputError, match=">= 0"):
        build_transform("color=-1", image_size=8, seed=0)


def test_build_transform_sizes_and_types():
    x = torch.rand(3, 40, 40)
    assert build_transform("crop", image_size=40, seed=0)(x).shape == (3, 40, 40)
    assert build_transform("resized_crop", image_size=24, seed=0)(x).shape == (3, 24, 24)
    t = build_transform("flip,crop=2", image_size=40, seed=0)
    assert isinstance(t, Compose) and isinstance(t.transforms[0], HorizontalFlip)
    assert isinstance(t.transforms[1], RandomCrop) and t.transforms[1].padding == 2
    assert torch.equal(build_transform("none", image_size=40, seed=0)(x), x)
    assert AugmentSample is Sample
    with pytest.raises(InputError, match="float"):
        build_transform("flip", image_size=40, seed=0)(torch.zeros(3, 4, 4, dtype=torch.int32))
    u8 = build_transform("flip", image_size=40, seed=0)(torch.zeros(3, 4, 4, dtype=torch.uint8))
    assert u8.dtype == torch.uint8  # 8-bit images stay 8-bit through geometry (OpenCV's kernels)
    with pytest.raises(InputError, match="tensor"):
        build_transform("flip", image_size=40, seed=0)(np.zeros((4, 4, 3)))


def test_every_op_keeps_samples_consistent():
    s = Sample(torch.rand(3, 32, 32), boxes=[[4, 4, 20, 20]], masks=torch.zeros(32, 32, dtype=torch.uint8),
               landmarks=[[10, 10]], labels=[5])
    for op in list_ops():
        out = build_transform(op, image_size=32, seed=0)(s)
        assert out.image.shape == (3, 32, 32) and out.masks.shape == (32, 32), op
        assert out.masks.dtype == torch.uint8 and out.boxes.shape == (1, 4) and out.landmarks.shape == (1, 2), op
        assert (out.boxes[:, 2:] >= out.boxes[:, :2]).all(), op


def test_reseed_restarts_the_stream():
    x = torch.rand(3, 16, 16)
    t = build_transform("rotate,color", image_size=16, seed=3)
    t.reseed(11)
    a = t(x)
    t.reseed(11)
    assert torch.equal(a, t(x))
    t.reseed(12)
    assert not torch.equal(a, t(x))


def test_dataset_with_transform_sees_unit_range_and_normalises_after():
    from cnnkit.data import load_dataset

    seen = []

    def spy(img):
        seen.append((float(img.min()), float(img.max())))
        return img

    ds = load_dataset("digits", split="val", transform=spy)
    x, _ = ds[0]
    assert 0.0 <= seen[0][0] and seen[0][1] <= 1.0 and x.min() < 0  # normalised after the transform
    ds.transform = build_transform("crop,rotate", image_size=ds.image_size, seed=0)
    assert ds[0][0].shape == (3, 32, 32)


@pytest.mark.parametrize("spec, expected", [
    ("flip=2", "flip=2: the strength is a probability and must be at most 1"),
    ("vflip=1.5", "at most 1"),
    ("color=5", "at most 1"),
    ("rotate=400", "at most 180"),
    ("translate=1.5", "at most 1"),
])
def test_meaningless_strengths_are_refused_not_capped(spec, expected):
    with pytest.raises(InputError, match=expected):
        build_transform(spec, image_size=32, seed=0)

"""Augmentation specs ("flip,crop,rotate=30,color"): one registry of op names, and `build_transform`.

An op is registered with `@register_op(name, help=...)` on a factory `(value, image_size, ctx) -> Transform`,
where `value` is the optional number after "=" in the spec (None: the op's default strength). Adding an
augmentation to the specs is adding a factory.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass

from cnnkit.augment.pca import PCAColourStats
from cnnkit.augment.transforms import (
    Affine,
    ColourShift,
    Compose,
    ElasticWarp,
    HorizontalFlip,
    Identity,
    PCAColour,
    RandomCrop,
    RandomResizedCrop,
    Transform,
    VerticalFlip,
)
from cnnkit.errors import InputError, UnknownNameError


@dataclass
class SpecContext:
    """What a factory may need besides its value."""

    image_size: int | None  # output side for the crops (None: keep the input size)
    pca: PCAColourStats | None = None  # fitted PCA colour statistics (None: ImageNet's)


OpFactory = Callable[[float | None, SpecContext], Transform]


@dataclass(frozen=True)
class OpInfo:
    name: str
    factory: OpFactory
    help: str


_OPS: dict[str, OpInfo] = {}
_ALIASES: dict[str, str] = {}

# "default" is what `cnnkit train --augment default` means: mirroring and a padded random crop (CIFAR's
# recipe), light enough for any natural-image set. Digits and text should not be mirrored: use "crop,rotate".
PRESETS = {"default": "flip,crop", "none": ""}


def register_op(name: str, *, help: str, aliases: tuple[str, ...] = ()) -> Callable[[OpFactory], OpFactory]:
    """Register a spec op; a duplicate name raises."""

    def deco(fn: OpFactory) -> OpFactory:
        for n in (name, *aliases):
            if n in _OPS or n in _ALIASES or n in PRESETS:
                raise ValueError(f"augmentation op {n!r} is registered twice")
        _OPS[name] = OpInfo(name, fn, help)
        for a in aliases:
            _ALIASES[a] = name
        return fn

    return deco


def list_ops() -> list[str]:
    """The op names a spec may use, in registration order (aliases not included)."""
    return list(_OPS)


def op_help() -> dict[str, str]:
    """{name: one-line description} of every op."""
    return {name: info.help for name, info in _OPS.items()}


def parse_spec(spec: str | list[str] | tuple[str, ...] | None) -> list[tuple[str, float | None]]:
    """Turn "flip,rotate=30" (or ["flip", "rotate=30"]) into [("flip", None), ("rotate", 30.0)].

    Presets expand ("default" -> flip, crop; "none" -> nothing). Unknown names raise UnknownNameError listing
    the known ops; a bad value raises InputError.
    """
    if spec is None:
        return []
    items = spec.split(",") if isinstance(spec, str) else [p for s in spec for p in str(s).split(",")]
    out: list[tuple[str, float | None]] = []
    for raw in items:
        item = raw.strip().lower()
        if not item:
            continue
        name, _, value_text = item.partition("=")
        name = name.strip().replace("-", "_")
        if name in PRESETS:
            out += parse_spec(PRESETS[name])
            continue
        name = _ALIASES.get(name, name)
        if name not in _OPS:
            known = list_ops() + list(_ALIASES) + list(PRESETS)
            close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
            hint = f"did you mean {', '.join(close)}? " if close else ""
            raise UnknownNameError(
                f"unknown augmentation {name!r}; {hint}known: {', '.join(list_ops())} (presets: {', '.join(PRESETS)})"
            )
        value = None
        if value_text.strip():
            try:
                value = float(value_text)
            except ValueError:
                raise InputError(f"augmentation {raw.strip()!r}: the value after '=' must be a number") from None
        out.append((name, value))
    return out


def build_transform(
    spec: str | list[str] | None,
    *,
    image_size: int | None,
    seed: int,
    pca: PCAColourStats | None = None,
) -> Compose:
    """Build the augmentation pipeline a spec names, e.g. "flip,crop,rotate,color" or "none"/"default".

    Each op may carry a strength after "=": "rotate=30" (degrees), "color=0.2" (offset), "crop=4" (padding);
    `cnnkit augment --list` prints them all. The ops run in the order written, drawing their random
    parameters from one generator seeded with `seed`.

    Args:
        spec: comma-separated op names, a list of them, or None / "none" for no augmentation.
        image_size: output side of "crop" and "resized_crop" (None keeps the input size).
        seed: seed of the random generator (a loader reseeds it per worker, see `cnnkit.data.make_loader`).
        pca: fitted colour statistics for "pca" (`fit_pca_colour`); ImageNet's when None.

    Returns:
        A Compose mapping a float tensor (C, H, W) in [0, 1], or a Sample, to the same.
    """
    ctx = SpecContext(image_size=image_size, pca=pca)
    transforms = [_OPS[name].factory(value, ctx) for name, value in parse_spec(spec)]
    return Compose(transforms, seed=seed)


def _v(value: float | None, default: float) -> float:
    if value is not None and value < 0:
        raise InputError(f"augmentation strengths must be >= 0, got {value}")
    return default if value is None else value


def _at_most(op: str, value: float, limit: float, what: str) -> float:
    """`value` when it is at most `limit`; a meaningless strength is refused, never silently capped."""
    if value > limit:
        raise InputError(f"{op}={value:g}: the strength is {what} and must be at most {limit:g}")
    return value


@register_op("flip", aliases=("hflip", "mirror"), help="mirror left-right, half the time (=p: probability)")
def _flip(value, ctx):
    return HorizontalFlip(p=_at_most("flip", _v(value, 0.5), 1.0, "a probability"))


@register_op("vflip", help="mirror top-bottom, half the time (=p: probability)")
def _vflip(value, ctx):
    return VerticalFlip(p=_at_most("vflip", _v(value, 0.5), 1.0, "a probability"))


@register_op("crop", aliases=("random_crop",), help="pad each side (=pixels, default size/8), cut a random window")
def _crop(value, ctx):
    pad = int(_v(value, max(1, (ctx.image_size or 32) // 8)))
    return RandomCrop(ctx.image_size, padding=pad)


@register_op("resized_crop", aliases=("rrc", "random_resized_crop"),
             help="random window of (=smallest area share, default 0.35) to 1 of the image, resized back")
def _resized_crop(value, ctx):
    low = _v(value, 0.35)
    if not 0 < low <= 1:
        raise InputError(f"resized_crop: the smallest area share must be in (0, 1], got {low}")
    return RandomResizedCrop(ctx.image_size, scale=(low, 1.0))


@register_op("rotate", aliases=("rotation",), help="rotate by up to +-(=degrees, default 15)")
def _rotate(value, ctx):
    return Affine(degrees=_at_most("rotate", _v(value, 15.0), 180.0, "degrees"))


@register_op("shear", help="shear along x by up to +-(=degrees, default 10)")
def _shear(value, ctx):
    return Affine(shear=_at_most("shear", _v(value, 10.0), 60.0, "degrees"))


@register_op("translate", aliases=("shift",), help="shift by up to +-(=share of the size, default 0.1)")
def _translate(value, ctx):
    return Affine(translate=_at_most("translate", _v(value, 0.1), 1.0, "a share of the image size"))


@register_op("scale", aliases=("zoom",), help="zoom in or out by up to +-(=share, default 0.15)")
def _scale(value, ctx):
    v = _v(value, 0.15)
    if v >= 1:
        raise InputError(f"scale: the zoom share must be below 1, got {v}")
    return Affine(scale=(1.0 - v, 1.0 + v))


@register_op("affine", help="rotate 10, translate 0.1, zoom 0.1, shear 5 at once (=multiplies all)")
def _affine(value, ctx):
    k = _v(value, 1.0)
    return Affine(degrees=10 * k, translate=min(1.0, 0.1 * k), scale=(max(0.05, 1 - 0.1 * k), 1 + 0.1 * k),
                  shear=5 * k)


@register_op("elastic", aliases=("warp", "local_warp"),
             help="local elastic warping, displacements up to (=share of the side, default 0.03)")
def _elastic(value, ctx):
    return ElasticWarp(magnitude=_v(value, 0.03))


@register_op("color", aliases=("colour", "colour_shift", "color_shift"),
             help="add a random offset to each channel, up to +-(=amount, default 0.1)")
def _colour(value, ctx):
    return ColourShift(_at_most("color", _v(value, 0.1), 1.0, "an offset on the [0, 1] pixel scale"))


@register_op("pca", aliases=("pca_colour", "pca_color", "fancy_pca"),
             help="AlexNet's PCA colour shift, alpha ~ N(0, =std, default 0.1)")
def _pca(value, ctx):
    return PCAColour(ctx.pca, alpha_std=_v(value, 0.1))


@register_op("identity", help="no change (a reference column in `cnnkit augment`)")
def _identity(value, ctx):
    return Identity()

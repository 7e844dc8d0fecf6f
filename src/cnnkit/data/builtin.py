"""Built-in data sets, made in memory with nothing downloaded: `digits` and `shapes`.

Each built-in is a function `(image_size) -> (uint8 images (N, H, W, C), targets, classes)` registered with
`@register_builtin`; adding a data set is adding a function. The pool is the same whatever the split seed,
so results across seeds are measured on the same images.
"""

from __future__ import annotations

import difflib
import functools
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from cnnkit.errors import UnknownNameError

BuiltinFn = Callable[[int | None], tuple[np.ndarray, np.ndarray, list[str]]]
_BUILTINS: dict[str, BuiltinFn] = {}
_DEFAULT_SIZE: dict[str, int] = {}
_RECOMMENDED: dict[str, dict] = {}
_TTA_VIEWS: dict[str, str] = {}


def register_builtin(name: str, default_size: int, *, recommended: dict | None = None,
                     tta: str = "flip") -> Callable[[BuiltinFn], BuiltinFn]:
    """Register a built-in data set under `name`; a duplicate name raises.

    Args:
        recommended: `cnnkit train` settings that work well on it (flag name -> value, e.g. {"epochs": 15,
            "augment": "crop=3,rotate=10"}); used for every flag the user does not give.
        tta: test-time views that suit it (`cnnkit evaluate --tta auto`): "flip" where a mirror image is the same
            thing, "5crop" (small shifts, never mirrored) for data whose mirror image is another thing (digits,
            text).
    """

    def deco(fn: BuiltinFn) -> BuiltinFn:
        if name in _BUILTINS:
            raise ValueError(f"built-in data set {name!r} is registered twice")
        _BUILTINS[name] = fn
        _DEFAULT_SIZE[name] = default_size
        _RECOMMENDED[name] = dict(recommended or {})
        _TTA_VIEWS[name] = tta
        return fn

    return deco


def recommended_settings(name: str) -> dict:
    """`cnnkit train` settings recommended for built-in data set `name` ({} for other data)."""
    return dict(_RECOMMENDED.get(name, {}))


def default_tta(name: str) -> str | None:
    """The test-time views that suit built-in data set `name` (None for other data)."""
    return _TTA_VIEWS.get(name)


def list_builtins() -> list[str]:
    """Names of the built-in data sets."""
    return sorted(_BUILTINS)


def builtin_default_size(name: str) -> int:
    return _DEFAULT_SIZE[name]


def get_builtin(name: str) -> BuiltinFn:
    """The generator of built-in data set `name`; an unknown name raises with the close matches."""
    try:
        return _BUILTINS[name]
    except KeyError:
        close = difflib.get_close_matches(name, _BUILTINS, n=3, cutoff=0.5)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        raise UnknownNameError(
            f"unknown data set {name!r}: not a file or folder, and not a built-in; {hint}"
            f"built-ins: {', '.join(list_builtins())}"
        ) from None


def _frozen(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)  # cached and shared by every data set: nobody may write into it
    return a


# LeNet-5 and the small zoo models reach 98-99.6% with these (the plain defaults, 10 epochs of batch 64 at 1e-3
# without augmentation, stop near 95%); digits are never mirrored: a mirrored 2 is not a 2
@register_builtin("digits", default_size=32, tta="5crop",
                  recommended={"epochs": 15, "batch_size": 32, "lr": 3e-3, "augment": "crop=3,rotate=10"})
@functools.lru_cache(maxsize=4)
def digits(image_size: int | None = None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """scikit-learn's 1,797 handwritten digits (8x8, 17 grey levels) resized to `image_size` (32), bilinear.

    Returns:
        images uint8 (1797, S, S, 1), targets int64 (1797,), classes "0".."9".
    """
    from sklearn.datasets import load_digits

    size = image_size or 32
    d = load_digits()
    x = torch.from_numpy(d.images.astype(np.float32) * (255.0 / 16.0))[:, None]  # (N, 1, 8, 8)
    x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=size < 8)
    images = x.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy().copy()
    return _frozen(images), _frozen(d.target.astype(np.int64)), [str(k) for k in range(10)]


SHAPE_CLASSES = ("circle", "square", "triangle", "star", "cross")
SHAPES_PER_CLASS = 300
SHAPES_SEED = 20240601  # fixed: `shapes` is one data set; the split seed only shuffles it


@register_builtin("shapes", default_size=64)
@functools.lru_cache(maxsize=4)
def shapes(image_size: int | None = None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The synthetic `shapes` set: 1,500 RGB images of 5 classes (300 each), 64x64 unless `image_size`.

    Returns:
        images uint8 (1500, S, S, 3), targets int64 (1500,), classes circle/square/triangle/star/cross.
    """
    images, targets = make_shapes(SHAPES_PER_CLASS, image_size or 64, seed=SHAPES_SEED)
    return _frozen(images), _frozen(targets), list(SHAPE_CLASSES)


def make_shapes(n_per_class: int, size: int = 64, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Draw `n_per_class` images of each shape in SHAPE_CLASSES, deterministically from `seed`.

    Every image has a random background colour with a soft gradient and pixel noise, and one shape of random
    size (18-40% of the side, as circumradius), position (wholly inside), rotation and colour (kept at least
    0.3 away from the background in RGB distance). Edges are anti-aliased by 2x2 supersampling. The geometry
    is relative to the side, so the same seed draws the same scenes at every size.

    Returns:
        images uint8 (5 * n_per_class, size, size, 3), in class-interleaved order; targets int64.
    """
    rng = np.random.default_rng(seed)
    n = n_per_class * len(SHAPE_CLASSES)
    targets = np.tile(np.arange(len(SHAPE_CLASSES)), n_per_class).astype(np.int64)
    # every random number is drawn up front, in one order, so the scenes do not depend on the chunking below
    radius = rng.uniform(0.18, 0.40, n)
    cx, cy = rng.uniform(radius, 1 - radius), rng.uniform(radius, 1 - radius)
    theta = rng.uniform(0, 2 * np.pi, n)
    bg = rng.uniform(0, 1, (n, 3)).astype(np.float32)
    fg = rng.uniform(0, 1, (n, 3)).astype(np.float32)
    for _ in range(100):  # redraw shape colours too close to their background (a handful of rounds suffice)
        close = np.linalg.norm(fg - bg, axis=1) < 0.3
        if not close.any():
            break
        fg[close] = rng.uniform(0, 1, (int(close.sum()), 3)).astype(np.float32)
    grad_dir = rng.uniform(0, 2 * np.pi, n)
    grad = rng.uniform(0, 0.25, n)
    noise_sd = rng.uniform(0.0, 0.06, n)
    noise_seed = rng.integers(0, 2**63, n)

    images = np.empty((n, size, size, 3), np.uint8)
    ss = 2 * size  # supersampled canvas
    coords = ((np.arange(ss) + 0.5) / ss).astype(np.float32)  # pixel centres on [0, 1]
    half = ((np.arange(size) + 0.5) / size).astype(np.float32)  # centres of the output pixels
    chunk = max(1, 1_000_000 // (ss * ss))
    for k, test in enumerate(_SHAPE_TESTS):
        members = np.flatnonzero(targets == k)
        for s in range(0, len(members), chunk):
            idx = members[s : s + chunk]

            def col(a, idx=idx):  # (n,) -> (m, 1, 1) for this chunk, to broadcast over the pixels
                return a[idx, None, None].astype(np.float32)

            dx, dy = coords[None, None, :] - col(cx), coords[None, :, None] - col(cy)
            cos, sin, r = np.cos(col(theta)), np.sin(col(theta)), col(radius)
            # shape coordinates: centred, rotated, in units of the radius
            inside = test((dx * cos + dy * sin) / r, (dy * cos - dx * sin) / r).astype(np.float32)  # (m, ss, ss)
            cover = 0.25 * (inside[:, ::2, ::2] + inside[:, 1::2, ::2] + inside[:, ::2, 1::2] + inside[:, 1::2, 1::2])
            cover = cover[..., None]  # (m, S, S, 1): share of each output pixel the shape covers
            ramp = half[None, None, :] * np.cos(col(grad_dir)) + half[None, :, None] * np.sin(col(grad_dir)) - 0.5
            ramp = (ramp * col(grad))[..., None]
            img = (bg[idx, None, None] + ramp) * (1 - cover) + fg[idx, None, None] * cover
            for j, i in enumerate(idx):  # one noise generator per image: the same scene whatever the chunking
                noise = np.random.default_rng(noise_seed[i]).standard_normal((size, size, 3), dtype=np.float32)
                img[j] += noise * np.float32(noise_sd[i])
            images[idx] = np.clip(np.rint(img * 255), 0, 255).astype(np.uint8)
    return images, targets


def _circle(u, v):
    return u * u + v * v <= 1.0


def _square(u, v):
    return np.maximum(np.abs(u), np.abs(v)) <= 0.75


def _triangle(u, v):
    # equilateral, circumradius 1: inside all three half-planes at distance 1/2 (the inradius)
    inside = np.ones(u.shape, bool)
    for k in range(3):
        a = np.pi / 2 + k * 2 * np.pi / 3 + np.pi / 3  # edge normals, between the vertices
        inside &= u * np.cos(a) + v * np.sin(a) <= 0.5
    return inside


def _star(u, v, points=5, inner=0.45):
    rho = np.hypot(u, v)
    sector = 2 * np.pi / points
    phi = np.mod(np.arctan2(v, u), sector)
    phi = np.minimum(phi, sector - phi)  # fold: 0 at an outer vertex, sector/2 at an inner one
    px, py = rho * np.cos(phi), rho * np.sin(phi)
    # edge from the outer vertex (1, 0) to the inner vertex at angle sector/2: inside = same side as the centre
    ix, iy = inner * np.cos(sector / 2), inner * np.sin(sector / 2)
    cross = (ix - 1.0) * py - iy * (px - 1.0)  # the centre gives iy > 0
    return cross >= 0


def _cross(u, v):
    au, av = np.abs(u), np.abs(v)
    return ((au <= 0.28) & (av <= 0.85)) | ((av <= 0.28) & (au <= 0.85))


_SHAPE_TESTS = (_circle, _square, _triangle, _star, _cross)

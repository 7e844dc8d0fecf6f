"""Built-in scenes: seeded images of several objects with boxes, masks and landmarks, nothing downloaded.

    from cnnkit.data.scenes import SceneConfig, make_scene, load_scenes
    scene = make_scene(SceneConfig(size=128, seed=0), index=7)      # always the same picture for (seed, 7)
    parts = load_scenes(train=2000, val=300, test=300, view="detection")

Every scene is a textured or gradient background with objects pasted one after the other, so a later object may
hide part of an earlier one (each keeps at least `1 - max_occlusion` of its area). Objects are the five shapes of
`cnnkit.data.builtin` (circle, square, triangle, star, cross; rotated, any colour) and, when asked for, scikit-learn's
real 8x8 handwritten digits ("0".."9") upsampled smoothly to their size. For every object the scene gives:

- its class (0-based index into `classes`; the semantic mask uses k + 1, 0 = background),
- its box, xyxy pixels: the tight box of its *visible* pixels (COCO's convention),
- its instance mask (visible pixels; masks of one scene never overlap),
- 4 landmarks, xy pixels, in the order top-left, top-right, bottom-right, bottom-left of the object's upright
  frame: a square's corners, a circle's points at 45 degrees, a star's four lower/side tips, a cross's outer
  arm corners, a triangle's two upper vertices and its lower vertex (twice), a digit's ink-box corners.
  Landmarks are those of the whole object, also where it is hidden (`visibility` says 1 there, else 2).
  Mirroring left-right swaps landmarks 0<->1 and 2<->3: `FLIP_PAIRS`.

A shape's rotation stays within 0.8 of half its symmetry angle (a square within +-36 degrees): every view of it
appears, and which corner is "top-left" stays unambiguous, so landmarks can be learnt.

Splits are index ranges that never meet: train scenes are indices 0, 1, ..., val scenes start at 1,000,000 and
test scenes at 2,000,000; digits are drawn from disjoint thirds of scikit-learn's 1,797 (60/20/20), so a held-out
scene holds no digit image a model was trained on.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace

import numpy as np

from cnnkit.data.builtin import _SHAPE_TESTS, SHAPE_CLASSES
from cnnkit.errors import InputError

DIGIT_CLASSES = tuple(str(k) for k in range(10))
ALL_CLASSES = SHAPE_CLASSES + DIGIT_CLASSES
LANDMARK_NAMES = ("top_left", "top_right", "bottom_right", "bottom_left")
FLIP_PAIRS = ((0, 1), (2, 3))  # landmark identities a left-right mirror swaps
SPLIT_BASE = {"train": 0, "val": 1_000_000, "test": 2_000_000}
_DIGIT_PART = {"train": (0.0, 0.6), "val": (0.6, 0.8), "test": (0.8, 1.0)}

# per shape: symmetry order (0 = round), base rotation of the rasteriser, landmarks of the upright shape in units
# of the radius (x right, y down), ordered tl, tr, br, bl
_S = np.sqrt(0.5)
_STAR = [np.deg2rad(a) for a in (198, -18, 54, 126)]
_SHAPES = {
    "circle": (0, 0.0, [(-_S, -_S), (_S, -_S), (_S, _S), (-_S, _S)]),
    "square": (4, 0.0, [(-0.75, -0.75), (0.75, -0.75), (0.75, 0.75), (-0.75, 0.75)]),
    "triangle": (3, 0.0, [(-np.sqrt(0.75), -0.5), (np.sqrt(0.75), -0.5), (0.0, 1.0), (0.0, 1.0)]),
    "star": (5, -np.pi / 2, [(np.cos(a), np.sin(a)) for a in _STAR]),
    "cross": (4, 0.0, [(-0.28, -0.85), (0.28, -0.85), (0.28, 0.85), (-0.28, 0.85)]),
}
_EXTENT = 1.08  # every shape lies within this many radii of its centre (the square's corner: 0.75 * sqrt(2))


@dataclass(frozen=True)
class SceneConfig:
    """What the scenes look like. Every field changes the pictures; (config, index) fixes one scene.

    Attributes:
        size: side of the square image in pixels.
        classes: object classes, any of SHAPE_CLASSES ("circle", ...) and DIGIT_CLASSES ("0".."9").
        min_objects, max_objects: objects per scene, uniform in [min, max] (0 allowed: empty scenes).
        scale: object radius as a fraction of the side, uniform in this range (a digit's patch is 2 radii wide).
        max_occlusion: largest share of an object's area later objects may hide.
        rotation: shape rotation as a fraction of half the shape's symmetry angle (0 = upright).
        noise: largest standard deviation of the pixel noise (uniform in [0, noise] per scene).
        seed: the seed of the whole set.
    """

    size: int = 128
    classes: tuple[str, ...] = SHAPE_CLASSES
    min_objects: int = 1
    max_objects: int = 4
    scale: tuple[float, float] = (0.08, 0.18)
    max_occlusion: float = 0.4
    rotation: float = 0.8
    noise: float = 0.04
    seed: int = 0

    def __post_init__(self):
        object.__setattr__(self, "classes", tuple(str(c) for c in self.classes))
        unknown = [c for c in self.classes if c not in ALL_CLASSES]
        if unknown or not self.classes or len(set(self.classes)) != len(self.classes):
            raise InputError(
                f"scene classes must be distinct names from {', '.join(ALL_CLASSES)}; got {list(self.classes)}"
            )
        if not isinstance(self.size, (int, np.integer)) or self.size < 16:
            raise InputError(f"scene size must be a whole number >= 16, got {self.size!r}")
        if not 0 <= self.min_objects <= self.max_objects <= 50:
            raise InputError(f"need 0 <= min_objects <= max_objects <= 50, got {self.min_objects}, {self.max_objects}")
        lo, hi = self.scale
        if not 0.02 <= lo <= hi <= 0.45:
            raise InputError(f"scale must be (low, high) with 0.02 <= low <= high <= 0.45, got {self.scale}")
        if not 0.0 <= self.max_occlusion < 1.0:
            raise InputError(f"max_occlusion must be in [0, 1), got {self.max_occlusion}")
        if not 0.0 <= self.rotation <= 1.0:
            raise InputError(f"rotation must be in [0, 1] (a share of half the symmetry angle), got {self.rotation}")
        if not 0.0 <= self.noise <= 0.5:
            raise InputError(f"noise must be in [0, 0.5], got {self.noise}")
        if not isinstance(self.seed, (int, np.integer)) or self.seed < 0:
            raise InputError(f"seed must be a whole number >= 0, got {self.seed!r}")

    @property
    def num_classes(self) -> int:
        return len(self.classes)


def one_object_config(**kw) -> SceneConfig:
    """The localisation / landmark set-up: one larger object per scene, nothing hiding it."""
    kw.setdefault("min_objects", 1)
    kw.setdefault("max_objects", 1)
    kw.setdefault("scale", (0.15, 0.35))
    return SceneConfig(**kw)


@dataclass
class Scene:
    """One generated scene (objects in paint order: a later one may hide an earlier one).

    Attributes:
        image: uint8 (H, W, 3).
        boxes: float32 (N, 4) xyxy pixels of the visible pixels.
        labels: int64 (N,) class indices into `classes`.
        instance_map: uint8 (H, W): 0 background, i + 1 where object i is visible.
        landmarks: float32 (N, 4, 2) xy pixels (LANDMARK_NAMES order).
        visibility: uint8 (N, 4): 2 visible, 1 hidden by a later object (COCO's keypoint flags).
        classes: the class names.
        index: the scene's index.
    """

    image: np.ndarray
    boxes: np.ndarray
    labels: np.ndarray
    instance_map: np.ndarray
    landmarks: np.ndarray
    visibility: np.ndarray
    classes: tuple[str, ...]
    index: int = 0

    @property
    def masks(self) -> np.ndarray:
        """uint8 (N, H, W) instance masks (0/1)."""
        n = len(self.labels)
        return (self.instance_map[None] == np.arange(1, n + 1, dtype=np.uint8)[:, None, None]).astype(np.uint8)

    @property
    def semantic(self) -> np.ndarray:
        """int64 (H, W): 0 background, k + 1 where an object of class k is visible."""
        lut = np.concatenate([[0], self.labels + 1]).astype(np.int64)
        return lut[self.instance_map]


def split_of(index: int) -> str:
    """The split a scene index belongs to ("train" below 1,000,000, then "val", then "test")."""
    if index >= SPLIT_BASE["test"]:
        return "test"
    return "val" if index >= SPLIT_BASE["val"] else "train"


@functools.lru_cache(maxsize=1)
def _digit_pool() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    d = load_digits()
    order = np.random.default_rng(20240607).permutation(len(d.target))  # fixed: the parts never change
    return (d.images[order] / 16.0).astype(np.float32), d.target[order].astype(np.int64)


@functools.lru_cache(maxsize=3)
def _digit_members(split: str) -> dict[int, np.ndarray]:
    _, targets = _digit_pool()
    lo, hi = (int(round(f * len(targets))) for f in _DIGIT_PART[split])
    return {k: lo + np.flatnonzero(targets[lo:hi] == k) for k in range(10)}


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """float32 (S, S, 3): a colour, a gradient, and one texture (none, smooth blobs, stripes or checks)."""
    t = (np.arange(size, dtype=np.float32) + 0.5) / size
    base = rng.uniform(0.0, 1.0, 3).astype(np.float32)
    ang = rng.uniform(0, 2 * np.pi)
    ramp = (t[None, :] * np.cos(ang) + t[:, None] * np.sin(ang) - 0.5) * rng.uniform(0.0, 0.35)
    img = base[None, None, :] + ramp[..., None].astype(np.float32)
    kind = rng.integers(0, 4)
    amp = np.float32(rng.uniform(0.04, 0.12))
    tint = rng.uniform(-1, 1, 3).astype(np.float32)
    if kind == 1:  # smooth blobs: a coarse random grid, bilinearly upsampled
        import cv2

        g = rng.standard_normal((6, 6)).astype(np.float32)
        tex = cv2.resize(g, (size, size), interpolation=cv2.INTER_CUBIC)
    elif kind == 2:  # stripes at a random angle and period
        a, period = rng.uniform(0, np.pi), rng.uniform(6, 24) / size
        tex = np.sin(2 * np.pi * (t[None, :] * np.cos(a) + t[:, None] * np.sin(a)) / period)
    elif kind == 3:  # checks
        cell = rng.uniform(6, 20) / size
        tex = ((np.floor(t / cell)[None, :] + np.floor(t / cell)[:, None]) % 2) * 2.0 - 1.0
    else:
        return img
    return img + (amp * tex.astype(np.float32))[..., None] * tint


def _shape_alpha(name: str, r: float, theta: float, cx: float, cy: float, x0: int, y0: int, w: int, h: int):
    """Coverage (h, w) in [0, 1] of a shape of radius r centred at (cx, cy) over the pixels [y0:y0+h, x0:x0+w]."""
    ss = 2  # 2x2 supersampling, as builtin.make_shapes
    xs = x0 + (np.arange(w * ss, dtype=np.float32) + 0.5) / ss - cx
    ys = y0 + (np.arange(h * ss, dtype=np.float32) + 0.5) / ss - cy
    c, s = np.float32(np.cos(theta)), np.float32(np.sin(theta))
    dx, dy = xs[None, :], ys[:, None]
    inside = _SHAPE_TESTS[SHAPE_CLASSES.index(name)]((dx * c + dy * s) / r, (dy * c - dx * s) / r)
    return inside.reshape(h, ss, w, ss).mean(axis=(1, 3), dtype=np.float32)


def _digit_alpha(image8: np.ndarray, side: int) -> np.ndarray:
    """A (side, side) ink coverage from an 8x8 digit in [0, 1]: smooth upsampling, then a soft threshold."""
    import cv2

    up = cv2.resize(image8, (side, side), interpolation=cv2.INTER_CUBIC)
    return np.clip((up - 0.25) / 0.4, 0.0, 1.0)


def make_scene(config: SceneConfig, index: int) -> Scene:
    """Generate scene `index` of `config`: the same (config, index) always gives the same scene.

    The split is given by the index (see `split_of`), and picks the digit images the scene may use.
    """
    if index < 0:
        raise InputError(f"scene index must be >= 0, got {index}")
    rng = np.random.default_rng([config.seed, index])
    size = config.size
    img = _background(rng, size)
    n_target = int(rng.integers(config.min_objects, config.max_objects + 1))
    inst = np.zeros((size, size), np.uint8)
    full_area: list[int] = []
    visible = np.zeros(0, np.int64)  # visible pixels of each object so far
    regions: list[tuple[int, int, int, int]] = []  # (y0, x0, h, w) each object was drawn in
    labels, landmarks = [], []
    digits_split = split_of(index)
    for _ in range(n_target):
        k = int(rng.integers(config.num_classes))
        name = config.classes[k]
        col = rng.uniform(0, 1, 3).astype(np.float32)
        for _try in range(20):  # placements that would hide too much of an earlier object are redrawn
            r = float(rng.uniform(*config.scale)) * size
            if name in DIGIT_CLASSES:
                side = max(4, int(round(2 * r)))
                x0, y0 = (int(v) for v in rng.integers(0, size - side + 1, 2))
                pool_images, _ = _digit_pool()
                members = _digit_members(digits_split)[int(name)]
                alpha = _digit_alpha(pool_images[members[rng.integers(len(members))]], side)
                w = h = side
                ink = np.argwhere(alpha >= 0.5)
                if len(ink) == 0:
                    continue
                (ya, xa), (yb, xb) = ink.min(0), ink.max(0) + 1
                pts = np.array([[xa, ya], [xb, ya], [xb, yb], [xa, yb]], np.float32) + [x0, y0]
            else:
                order, theta0, upright = _SHAPES[name]
                theta = float(rng.uniform(-1, 1)) * config.rotation * np.pi / order if order else 0.0
                ext = _EXTENT * r
                cx, cy = (float(v) for v in rng.uniform(ext, size - ext, 2))
                x0, y0 = int(np.floor(cx - ext)), int(np.floor(cy - ext))
                w, h = int(np.ceil(cx + ext)) - x0, int(np.ceil(cy + ext)) - y0
                alpha = _shape_alpha(name, r, theta0 + theta, cx, cy, x0, y0, w, h)
                c, s = np.cos(theta), np.sin(theta)
                up = np.asarray(upright, np.float64) * r
                pts = np.stack([cx + up[:, 0] * c - up[:, 1] * s, cy + up[:, 0] * s + up[:, 1] * c], 1).astype(
                    np.float32
                )
            mine = alpha >= 0.5
            if not mine.any():
                continue
            hidden = inst[y0 : y0 + h, x0 : x0 + w][mine]
            lost = np.bincount(hidden, minlength=len(full_area) + 1)[1:]
            if lost.any() and np.any(visible - lost < (1 - config.max_occlusion) * np.asarray(full_area)):
                continue
            break
        else:
            continue  # no placement found: the scene has one object fewer (still the same for this index)
        # colour far enough from the background under the object, so every object can be seen
        under = img[y0 : y0 + h, x0 : x0 + w][mine].mean(0)
        for _c in range(50):
            if np.linalg.norm(col - under) >= 0.35:
                break
            col = rng.uniform(0, 1, 3).astype(np.float32)
        region = img[y0 : y0 + h, x0 : x0 + w]
        region += alpha[..., None] * (col - region)
        inst[y0 : y0 + h, x0 : x0 + w][mine] = len(labels) + 1
        full_area.append(int(mine.sum()))
        visible = np.append(visible - lost, full_area[-1])
        regions.append((y0, x0, h, w))
        labels.append(k)
        landmarks.append(pts)

    noise_sd = np.float32(rng.uniform(0.0, config.noise))
    if noise_sd > 0:
        img += rng.standard_normal(img.shape, dtype=np.float32) * noise_sd
    image = np.clip(np.rint(img * 255.0), 0, 255).astype(np.uint8)

    n = len(labels)
    boxes = np.zeros((n, 4), np.float32)
    keep = []
    for i, (y0, x0, h, w) in enumerate(regions):  # an object's pixels lie in the region it was drawn in
        ys, xs = np.nonzero(inst[y0 : y0 + h, x0 : x0 + w] == i + 1)
        if len(xs):
            boxes[i] = (x0 + xs.min(), y0 + ys.min(), x0 + xs.max() + 1, y0 + ys.max() + 1)
            keep.append(i)
    lms = np.stack(landmarks).astype(np.float32) if n else np.zeros((0, 4, 2), np.float32)
    vis = np.full((n, 4), 2, np.uint8)
    if n:
        px = np.clip(np.floor(lms).astype(np.int64), 0, size - 1)
        owner = inst[px[..., 1], px[..., 0]].astype(np.int64)  # (N, 4) who is visible at each landmark
        vis[owner > np.arange(1, n + 1)[:, None]] = 1
    if len(keep) < n:  # an object hidden entirely cannot happen with max_occlusion < 1, kept as a safety net
        remap = np.zeros(n + 1, np.uint8)
        remap[[i + 1 for i in keep]] = np.arange(1, len(keep) + 1)
        inst = remap[inst]
        boxes, lms, vis = boxes[keep], lms[keep], vis[keep]
        labels = [labels[i] for i in keep]
    return Scene(image, boxes, np.asarray(labels, np.int64), inst, lms, vis, config.classes, index)


def make_scenes(config: SceneConfig, indices) -> list[Scene]:
    """`make_scene` for each index."""
    return [make_scene(config, int(i)) for i in indices]


def with_overrides(config: SceneConfig, **kw) -> SceneConfig:
    """A copy of `config` with some fields changed (None values ignored)."""
    return replace(config, **{k: v for k, v in kw.items() if v is not None})

"""The built-in `faces` identity data set: cartoon faces from a seeded generator, unlimited identities.

An identity is a set of stable traits drawn from `(seed, identity)` alone: face shape and proportions, skin
tone, eyes (spacing, size, shape, iris colour), brows, nose, mouth, hair (colour, style, hairline), and
accessories (glasses, beard, moustache, earrings). Every image of it varies, independently of the identity,
pose (roll, yaw), scale, position, lighting (brightness, colour cast, side shading), expression (smile,
open mouth, eye opening, raised brows), occlusion (a block over part of the face), noise and background
(colour, gradient, clutter). Nothing outside the face tells the identity apart, so nearest neighbour on raw
pixels stays weak while an encoder that learns the traits recognises identities it never saw.

Identities are integers; `identity_split` gives disjoint ranges for train, val and test, so test identities
are never trained on. Rendering is vectorised over images with every edge ramped over one pixel (anti-aliased).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

FACES_SEED = 20240615  # fixed: `faces` is one population; a run's seed only shuffles and samples it
FACES_SIZE = 32  # default side in pixels
# identities per split of the built-in data set, and images drawn of each
# (2000 x 10 training images beat 500 x 20 at the same number of steps: 0.958 vs 0.948 one-shot 20-way on the
# test identities after ~2,400 steps; more identities is what one-shot recognition of new people needs)
SPLIT_IDENTITIES = {"train": 2000, "val": 100, "test": 200}
SPLIT_IMAGES = {"train": 10, "val": 10, "test": 10}
_SPLIT_START = {"train": 0, "val": 1_000_000, "test": 2_000_000}  # disjoint identity ranges

_HAIR_COLOURS = np.array([
    [0.08, 0.06, 0.05], [0.25, 0.15, 0.08], [0.45, 0.28, 0.12], [0.75, 0.55, 0.25], [0.85, 0.75, 0.45],
    [0.55, 0.20, 0.08], [0.70, 0.70, 0.70], [0.95, 0.95, 0.92], [0.15, 0.15, 0.45], [0.55, 0.10, 0.45],
], np.float32)
_IRIS_COLOURS = np.array([
    [0.30, 0.18, 0.08], [0.15, 0.35, 0.70], [0.20, 0.50, 0.25], [0.45, 0.45, 0.45], [0.05, 0.05, 0.05],
], np.float32)
_SKIN_COLOURS = np.array([
    [0.98, 0.85, 0.75], [0.93, 0.76, 0.62], [0.80, 0.60, 0.45], [0.62, 0.43, 0.30], [0.42, 0.28, 0.19],
    [0.95, 0.80, 0.55], [0.70, 0.85, 0.60], [0.75, 0.75, 0.95],  # two cartoon tones: more identities apart
], np.float32)


def identity_split(split: str, n: int | None = None) -> np.ndarray:
    """Identity numbers of `split` ("train", "val", "test"): n of them (default SPLIT_IDENTITIES[split]).

    The ranges are disjoint whatever n is, so no test identity is ever a training one.
    """
    if split not in _SPLIT_START:
        raise ValueError(f"split must be one of {sorted(_SPLIT_START)}, got {split!r}")
    n = SPLIT_IDENTITIES[split] if n is None else n
    return np.arange(_SPLIT_START[split], _SPLIT_START[split] + n, dtype=np.int64)


def identity_traits(identity: int, seed: int = FACES_SEED) -> dict[str, np.ndarray]:
    """The stable traits of one identity, drawn from (seed, identity) only.

    Returns:
        dict of float32 arrays (scalars or colours (3,)); units are the face's half-height.
    """
    r = np.random.default_rng([seed, int(identity), 0])
    u = r.uniform
    hair_style = r.integers(0, 5)  # 0 bald, 1 short, 2 fringe, 3 long, 4 side parting
    t = {
        "face_w": u(0.62, 0.88), "jaw": u(0.70, 1.05), "skin": _jitter(r, _SKIN_COLOURS[r.integers(8)], 0.05),
        "eye_dx": u(0.26, 0.42), "eye_y": u(-0.20, 0.02), "eye_r": u(0.08, 0.15), "eye_aspect": u(0.45, 1.0),
        "iris": _jitter(r, _IRIS_COLOURS[r.integers(5)], 0.05), "iris_r": u(0.45, 0.8),
        "brow_dy": u(0.12, 0.24), "brow_w": u(0.12, 0.22), "brow_t": u(0.025, 0.07), "brow_tilt": u(-0.35, 0.35),
        "nose_len": u(0.12, 0.34), "nose_w": u(0.05, 0.14), "nose_dark": u(0.55, 0.85),
        "mouth_y": u(0.40, 0.62), "mouth_w": u(0.16, 0.36), "lip_t": u(0.025, 0.07),
        "lip": _jitter(r, np.array([0.75, 0.25, 0.25], np.float32), 0.15),
        "hair": _jitter(r, _HAIR_COLOURS[r.integers(len(_HAIR_COLOURS))], 0.05),
        "hair_style": np.float32(hair_style), "hairline": u(-0.80, -0.45), "hair_vol": u(1.0, 1.25),
        "glasses": np.float32(r.random() < 0.3), "glasses_r": u(0.14, 0.22),
        "glasses_c": _jitter(r, np.array([0.1, 0.1, 0.1], np.float32), 0.3),
        "beard": np.float32(r.random() < 0.2), "moustache": np.float32(r.random() < 0.25),
        "earrings": np.float32(r.random() < 0.2), "ear_r": u(0.12, 0.2),
        "mole": np.float32(r.random() < 0.25), "mole_x": u(-0.45, 0.45), "mole_y": u(-0.1, 0.45),
    }
    return {k: np.asarray(v, np.float32) for k, v in t.items()}


def _jitter(r: np.random.Generator, colour: np.ndarray, amount: float) -> np.ndarray:
    return np.clip(colour + r.uniform(-amount, amount, 3), 0, 1).astype(np.float32)


def image_variation(identity: int, index: int, seed: int = FACES_SEED) -> dict[str, np.ndarray]:
    """Per-image conditions of image `index` of `identity`: pose, scale, position, lighting, expression,
    occlusion, noise, background; independent of the identity's traits."""
    r = np.random.default_rng([seed, int(identity), 1, int(index)])
    u = r.uniform
    v = {
        "roll": u(-0.25, 0.25), "yaw": u(-0.3, 0.3), "scale": u(0.30, 0.38),
        "cx": u(0.38, 0.62), "cy": u(0.40, 0.60),
        "bright": u(0.65, 1.25), "cast": r.uniform(-0.12, 0.12, 3), "shade": u(0.0, 0.45),
        "shade_dir": u(0, 2 * np.pi), "gamma": u(0.8, 1.25),
        "smile": u(-0.06, 0.12), "open": u(0.0, 1.0) * (r.random() < 0.35), "eye_open": u(0.35, 1.0),
        "brow_raise": u(-0.04, 0.06),
        "occ": np.float32(r.random() < 0.2), "occ_x": u(-0.9, 0.9), "occ_y": u(-0.9, 0.9),
        "occ_w": u(0.15, 0.45), "occ_h": u(0.1, 0.4), "occ_c": r.uniform(0, 1, 3),
        "noise": u(0.0, 0.04), "noise_seed": r.integers(0, 2**31),
        "bg": r.uniform(0, 1, 3), "bg2": r.uniform(0, 1, 3), "bg_dir": u(0, 2 * np.pi),
        "clutter": r.uniform(0, 1, (3, 7)),  # up to 3 blobs: x, y, rx, ry, r, g, b
        "n_clutter": np.float32(r.integers(0, 4)),
    }
    return {k: np.asarray(x, np.float32) for k, x in v.items()}


def make_faces(identities: Sequence[int] | np.ndarray, images_per_identity: int, size: int = FACES_SIZE, *,
               seed: int = FACES_SEED, chunk: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Render `images_per_identity` images of each identity.

    The same (seed, identity, image index) renders the same image whatever else is asked for.

    Args:
        identities: identity numbers (any non-negative integers; see `identity_split`).
        images_per_identity: images of each identity.
        size: side of the square images in pixels.
        seed: population seed (FACES_SEED is the built-in data set).
        chunk: images rendered at once (memory: about chunk * (2 * size)^2 * 60 bytes).

    Returns:
        images uint8 (N, size, size, 3) with N = len(identities) * images_per_identity, identity-major;
        labels int64 (N,): the position of each image's identity in `identities`.
    """
    identities = [int(i) for i in identities]
    params = []
    for ident in identities:
        t = identity_traits(ident, seed)
        params.extend({**t, **image_variation(ident, k, seed)} for k in range(images_per_identity))
    labels = np.repeat(np.arange(len(identities), dtype=np.int64), images_per_identity)
    images = np.empty((len(params), size, size, 3), np.uint8)
    for s in range(0, len(params), chunk):
        part = params[s : s + chunk]
        batch = {k: np.stack([p[k] for p in part]) for k in part[0]}
        images[s : s + len(part)] = _render(batch, size)
    return images, labels


# ---------------------------------------------------------------------------------------------- rendering
def _col(a: np.ndarray) -> np.ndarray:
    """(m,) -> (m, 1, 1), to broadcast a per-image value over the pixels."""
    a = np.asarray(a, np.float32)
    return a.reshape(-1, 1, 1) if a.ndim else a  # scalars broadcast as they are


def _ellipse(x, y, cx, cy, rx, ry, px):
    """Coverage (m, H, W) of axis-aligned ellipses, the edge ramped over a pixel of size `px` (anti-aliasing)."""
    rx, ry = _col(rx), _col(ry)
    d = np.sqrt(((x - _col(cx)) / rx) ** 2 + ((y - _col(cy)) / ry) ** 2)
    return np.clip(0.5 + (1.0 - d) * np.minimum(rx, ry) / px, 0.0, 1.0)  # ~ signed distance to the edge / px


def _segment(x, y, x0, y0, x1, y1, t, px):
    """Coverage of thick line segments (capsules) of half-thickness t from (x0, y0) to (x1, y1)."""
    dx, dy = _col(x1 - x0), _col(y1 - y0)
    qx, qy = x - _col(x0), y - _col(y0)
    h = np.clip((qx * dx + qy * dy) / (dx * dx + dy * dy + 1e-9), 0, 1)
    d = np.hypot(qx - h * dx, qy - h * dy)
    return np.clip(0.5 + (_col(t) - d) / px, 0.0, 1.0)


def _paint(img, cover, colour):
    """Paint `colour` (m, 3) over img (m, H, W, 3) where `cover` (m, H, W) says."""
    c = cover[..., None]
    img *= 1.0 - c
    img += c * np.asarray(colour, np.float32)[:, None, None, :]


def _render(p: dict[str, np.ndarray], size: int) -> np.ndarray:
    m = len(p["roll"])
    ss = size
    g = ((np.arange(ss, dtype=np.float32) + 0.5) / ss)
    u, v = g[None, None, :], g[None, :, None]  # image coordinates in [0, 1]

    # background: two-colour gradient and a few blobs of clutter
    ramp = np.clip((u - 0.5) * _col(np.cos(p["bg_dir"])) + (v - 0.5) * _col(np.sin(p["bg_dir"])) + 0.5, 0, 1)
    img = (p["bg"][:, None, None, :] * (1 - ramp[..., None]) + p["bg2"][:, None, None, :] * ramp[..., None])
    img = np.array(np.broadcast_to(img, (m, ss, ss, 3)), np.float32)  # a writable copy
    for k in range(3):
        c = p["clutter"][:, k]
        on = (p["n_clutter"] > k).astype(np.float32)
        _paint(img, _ellipse(u, v, c[:, 0], c[:, 1], 0.05 + 0.2 * c[:, 2], 0.05 + 0.2 * c[:, 3], 1.0 / ss) * _col(on),
               c[:, 4:7])

    # face coordinates: centred on the face, rotated by roll, in units of the face half-height
    cos, sin = np.cos(p["roll"]), np.sin(p["roll"])
    du, dv = u - _col(p["cx"]), v - _col(p["cy"])
    x = (du * _col(cos) + dv * _col(sin)) / _col(p["scale"])
    y = (dv * _col(cos) - du * _col(sin)) / _col(p["scale"])
    px = _col(1.0 / (ss * p["scale"]))  # one pixel in face units: every edge is ramped over it (anti-aliasing)
    yaw = p["yaw"]
    shift = 0.3 * yaw  # interior features move with the yaw, the outline does not
    xf = x - _col(shift)  # coordinates of the interior features
    squash = np.cos(yaw)  # features narrow when turned

    skin, hair = p["skin"], p["hair"]
    style = p["hair_style"]
    fw = p["face_w"]
    # long hair behind the head
    long_hair = (style == 3).astype(np.float32)
    _paint(img, _ellipse(x, y, 0, 0.35, fw * 1.35 * p["hair_vol"], 1.45, px) * _col(long_hair), hair)
    # ears (and earrings)
    for side in (-1.0, 1.0):
        ex = side * fw * 0.98 - shift * 0.3
        _paint(img, _ellipse(x, y, ex, np.zeros(m), p["ear_r"] * 0.8, p["ear_r"] * 1.4, px), skin * 0.9)
        _paint(img, _ellipse(x, y, ex, p["ear_r"] * 1.3, np.full(m, 0.06), np.full(m, 0.06), px)
               * _col(p["earrings"]), np.tile([[0.95, 0.8, 0.2]], (m, 1)))
    # the face: an ellipse whose lower half narrows by `jaw`
    a = _col(fw) * np.where(y > 0, 1.0 - (1.0 - _col(p["jaw"])) * np.clip(y, 0, 1), 1.0)
    face = np.clip(0.5 + (1.0 - np.sqrt((x / a) ** 2 + y**2)) * np.minimum(a, 1.0) / px, 0, 1)
    _paint(img, face, skin)
    # beard: the lower face in hair colour, leaving the mouth
    beard = face * np.clip((y - _col(p["mouth_y"] - 0.12)) / 0.05, 0, 1) * _col(p["beard"])
    _paint(img, beard, hair * 0.9)
    # hair on top: the part of the head above the hairline, widened by volume
    top = _ellipse(x, y, 0, -0.05, fw * 1.08 * p["hair_vol"], 1.08 * p["hair_vol"], px)
    line = p["hairline"]
    fringe = np.where(style == 2, line + 0.25, line)
    parting = np.where(style == 4, 0.15 * np.sign(p["hairline"] + 0.6 + 1e-3), 0.0)
    above = np.clip((_col(fringe) + _col(parting) * x - y) / 0.04, 0, 1)
    has_hair = (style > 0).astype(np.float32)
    _paint(img, top * above * _col(has_hair), hair)
    bald_sides = top * np.clip((-0.55 - y) / 0.04, 0, 1) * _col((style == 0) * 0.0)
    _paint(img, bald_sides, hair)

    # eyes: white, iris, pupil; openness is expression, shape is identity
    eye_ry = p["eye_r"] * p["eye_aspect"] * p["eye_open"]
    for side in (-1.0, 1.0):
        ex = side * p["eye_dx"] * squash
        _paint(img, _ellipse(xf, y, ex, p["eye_y"], p["eye_r"] * squash, eye_ry, px), np.full((m, 3), 0.96))
        ir = p["eye_r"] * p["iris_r"]
        iris = _ellipse(xf, y, ex + 0.3 * shift, p["eye_y"], ir, ir, px) \
            * _ellipse(xf, y, ex, p["eye_y"], p["eye_r"] * squash, eye_ry, px)
        _paint(img, iris, p["iris"])
        _paint(img, iris * _ellipse(xf, y, ex + 0.3 * shift, p["eye_y"], ir * 0.45, ir * 0.45, px),
               np.full((m, 3), 0.02))
        # brow: a thick segment above the eye, tilted (identity) and raised (expression)
        by = p["eye_y"] - p["brow_dy"] - p["brow_raise"]
        inner, outer = ex - side * p["brow_w"] * squash, ex + side * p["brow_w"] * squash
        tilt = p["brow_tilt"] * p["brow_w"]
        _paint(img, _segment(xf, y, inner, by + tilt, outer, by - tilt, p["brow_t"], px), hair * 0.8)
        # glasses: a ring around each eye
        gr = p["glasses_r"]
        ring = _ellipse(xf, y, ex, p["eye_y"], gr * squash, gr, px) \
            * (1 - _ellipse(xf, y, ex, p["eye_y"], (gr - 0.035) * squash, gr - 0.035, px))
        _paint(img, ring * _col(p["glasses"]), p["glasses_c"])
    bridge = _segment(xf, y, -(p["eye_dx"] - p["glasses_r"]) * squash, p["eye_y"],
                      (p["eye_dx"] - p["glasses_r"]) * squash, p["eye_y"], np.full(m, 0.02), px)
    _paint(img, bridge * _col(p["glasses"]), p["glasses_c"])

    # nose: a darker wedge from between the eyes down, its tip moving most with yaw
    ny0 = p["eye_y"] + 0.08
    ny1 = ny0 + p["nose_len"]
    _paint(img, _segment(xf, y, np.zeros(m), ny0, 0.2 * shift, ny1, p["nose_w"] * 0.5, px) * 0.8,
           skin * p["nose_dark"][:, None])
    _paint(img, _ellipse(xf, y, 0.2 * shift, ny1, p["nose_w"], p["nose_w"] * 0.6, px), skin * p["nose_dark"][:, None])
    # moustache
    my = p["mouth_y"]
    _paint(img, _segment(xf, y, -p["mouth_w"] * squash, my - 0.03, p["mouth_w"] * squash, my - 0.03,
                         np.full(m, 0.045), px) * _col(p["moustache"]), hair * 0.9)
    # mouth: a curved band (smile bends it), opened by expression
    half_w = p["mouth_w"] * squash
    rel = np.clip(xf / _col(half_w), -1.5, 1.5)
    curve = _col(my) - _col(p["smile"]) * (1 - rel**2)  # the corners rise with a smile
    inside_x = np.clip((1 - np.abs(rel)) / 0.15, 0, 1)
    openness = _col(p["open"] * 0.06)
    lips = np.clip((_col(p["lip_t"]) + openness - np.abs(y - curve)) / px + 0.5, 0, 1) * inside_x
    _paint(img, lips, p["lip"])
    _paint(img, np.clip((openness - np.abs(y - curve)) / px + 0.5, 0, 1) * inside_x, np.full((m, 3), 0.15))
    # mole
    _paint(img, _ellipse(xf, y, p["mole_x"], p["mole_y"], np.full(m, 0.04), np.full(m, 0.04), px)
           * face * _col(p["mole"]), skin * 0.35)

    # occlusion: a block of some colour over part of the face (a hand, a sign, a scarf)
    occ = (np.abs(x - _col(p["occ_x"])) < _col(p["occ_w"])) & (np.abs(y - _col(p["occ_y"])) < _col(p["occ_h"]))
    _paint(img, occ.astype(np.float32) * _col(p["occ"]), p["occ_c"])

    # lighting: brightness, colour cast, shading from one side, gamma; then noise
    shade = 1.0 - _col(p["shade"]) * np.clip(0.5 + (u - 0.5) * _col(np.cos(p["shade_dir"]))
                                             + (v - 0.5) * _col(np.sin(p["shade_dir"])), 0, 1)
    img *= (shade * _col(p["bright"]))[..., None]
    img += p["cast"][:, None, None, :]
    img = np.clip(img, 0, 1) ** p["gamma"][:, None, None, None]
    for i in range(m):
        img[i] += np.random.default_rng(int(p["noise_seed"][i])).normal(0, p["noise"][i], img[i].shape)
    return (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)

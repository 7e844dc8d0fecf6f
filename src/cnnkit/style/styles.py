"""Style images made offline: no painting ships with cnnkit, so a few are generated (users bring their own).

- `swirl_painting`: thick brush strokes that follow a flow field of vortices, in a night-sky palette with glowing
  stars and a dark foreground, in the spirit of Van Gogh's Starry Night;
- `stroke_painting`: the same brushwork over any image's colours (an "impressionist" version of a photo);
- `texture`: scikit-image's textures (brick, grass, gravel in a colour map; immunohistochemistry, hubble as they
  are).

Every generator is deterministic under its seed and returns (H, W, 3) uint8.
"""

from __future__ import annotations

import numpy as np

from cnnkit.errors import UnknownNameError

__all__ = ["STYLES", "flow_field", "make_style", "paint_strokes", "stroke_painting", "swirl_painting", "texture"]

NIGHT_SKY = np.array([[16, 38, 92], [27, 62, 138], [44, 94, 170], [80, 130, 190], [120, 160, 200], [200, 210, 150],
                      [235, 215, 90], [246, 230, 140]], dtype=np.float32)


def flow_field(h: int, w: int, vortices: list[tuple[float, float, float, float]], wind: float = 0.6) -> np.ndarray:
    """Directions of a flow of point vortices plus a horizontal wind.

    Args:
        h, w: size of the field.
        vortices: (cy, cx, strength, core radius) in pixels; positive strength turns counter-clockwise.
        wind: uniform flow to the right, in the units of a vortex of strength 1 at distance 1.

    Returns:
        (H, W, 2) unit vectors (dy, dx).
    """
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    vy = np.zeros((h, w), np.float32)
    vx = np.full((h, w), wind, np.float32)
    for cy, cx, s, r0 in vortices:
        dy, dx = yy - cy, xx - cx
        d2 = dy * dy + dx * dx + r0 * r0
        # velocity of a point vortex (perpendicular to the radius, falling off as 1/r), softened in its core
        vy += s * dx / d2 * r0 * 2
        vx += -s * dy / d2 * r0 * 2
    n = np.sqrt(vy * vy + vx * vx) + 1e-6
    return np.stack([vy / n, vx / n], axis=-1)


def paint_strokes(canvas: np.ndarray, field: np.ndarray, colour_at, n: int, rng: np.random.Generator,
                  length: tuple[int, int] = (8, 26), width: tuple[int, int] = (3, 7)) -> np.ndarray:
    """Paint `n` strokes that follow `field` onto `canvas` (H, W, 3) uint8, in place; returns it.

    Each stroke starts at a random point, walks along the field (1.5 px a step) and is drawn as an anti-aliased
    polyline: a darker, wider edge first, then its colour, as a loaded brush leaves it.

    Args:
        colour_at: function (y, x) -> RGB float array, the stroke's colour at its start.
    """
    import cv2

    h, w = canvas.shape[:2]
    for _ in range(n):
        y, x = rng.uniform(0, h), rng.uniform(0, w)
        steps = int(rng.integers(*length))
        pts = []
        for _ in range(steps):
            pts.append((x, y))
            dy, dx = field[min(int(y), h - 1), min(int(x), w - 1)]
            y, x = y + 1.5 * dy, x + 1.5 * dx
            if not (0 <= y < h and 0 <= x < w):
                break
        if len(pts) < 2:
            continue
        poly = np.round(np.array(pts) * 4).astype(np.int32)  # 2 fractional bits (shift=2) for smooth lines
        colour = np.clip(colour_at(pts[0][1], pts[0][0]) + rng.normal(0, 12, 3), 0, 255)
        thick = int(rng.integers(*width))
        edge = tuple(float(v) for v in colour * 0.7)
        cv2.polylines(canvas, [poly], False, edge, thick + 2, cv2.LINE_AA, shift=2)
        cv2.polylines(canvas, [poly], False, tuple(float(v) for v in colour), thick, cv2.LINE_AA, shift=2)
    return canvas


def swirl_painting(size: int = 512, seed: int = 0, strokes: int | None = None) -> np.ndarray:
    """A night sky of swirling brush strokes, bright stars and a dark foreground (Starry Night's spirit).

    Args:
        size: side of the square image.
        seed: every random choice derives from it.
        strokes: number of brush strokes (default: scales with the area, 9,000 at 512).
    """
    import cv2

    rng = np.random.default_rng(seed)
    h = w = size
    u = size / 512
    vortices = [(0.42 * h, 0.45 * w, 2.2, 70 * u), (0.30 * h, 0.75 * w, -1.5, 50 * u),
                (0.22 * h, 0.18 * w, 1.4, 45 * u)]
    field = flow_field(h, w, vortices, wind=0.5)
    stars = [(0.12 * h, 0.12 * w, 26 * u), (0.16 * h, 0.42 * w, 18 * u), (0.10 * h, 0.62 * w, 22 * u),
             (0.28 * h, 0.93 * w, 20 * u), (0.45 * h, 0.08 * w, 16 * u), (0.14 * h, 0.85 * w, 40 * u)]
    horizon = lambda x: h * (0.70 + 0.06 * np.sin(x / w * 5.0 + 1.0))  # noqa: E731 - the hills' outline

    def sky_colour(y, x):
        glow = 0.0
        for sy, sx, r in stars:
            glow = max(glow, np.exp(-(((y - sy) ** 2 + (x - sx) ** 2) / (2 * (1.6 * r) ** 2))))
        for cy, cx, _, r0 in vortices:
            d = np.hypot(y - cy, x - cx)
            glow = max(glow, 0.55 * np.exp(-((d - 1.2 * r0) ** 2) / (2 * (0.35 * r0) ** 2)))
        base = 1.0 + 3.0 * (y / h) + rng.uniform(-0.8, 0.8)  # darker blue on top, lighter near the horizon
        i = np.clip(base + glow * 5.0, 0, len(NIGHT_SKY) - 1.001)
        lo = int(i)
        return NIGHT_SKY[lo] * (1 - (i - lo)) + NIGHT_SKY[lo + 1] * (i - lo)

    def ground_colour(y, x):
        return np.array([20, 40, 30], np.float32) + rng.uniform(0, 1) * np.array([30, 50, 20], np.float32)

    canvas = np.zeros((h, w, 3), np.uint8)
    canvas[:] = NIGHT_SKY[1].astype(np.uint8)
    n = strokes if strokes is not None else int(9000 * u * u)
    paint_strokes(canvas, field, sky_colour, n, rng, (int(8 * u) + 2, int(26 * u) + 3), (max(2, int(3 * u)),
                                                                                          max(3, int(7 * u))))
    # stars: concentric rings of short strokes
    for sy, sx, r in stars:
        for ring in np.linspace(1.6 * r, 0.2 * r, 6):
            colour = NIGHT_SKY[-1] if ring < r else NIGHT_SKY[-3]
            cv2.circle(canvas, (int(sx), int(sy)), int(ring), tuple(float(v) for v in colour),
                       max(2, int(4 * u)), cv2.LINE_AA)
        cv2.circle(canvas, (int(sx), int(sy)), int(0.35 * r), (250, 245, 200), -1, cv2.LINE_AA)
    # dark rolling hills with vertical-ish strokes, and a flame-like cypress on the left
    xs = np.arange(w)
    hills = np.array([[x, int(horizon(x))] for x in xs] + [[w - 1, h - 1], [0, h - 1]], np.int32)
    mask = np.zeros((h, w), np.uint8)
    cv2.fillPoly(mask, [hills], 255)
    cyp = np.array([[0.10 * w, h], [0.17 * w, 0.35 * h], [0.21 * w, 0.28 * h], [0.25 * w, 0.40 * h],
                    [0.31 * w, h]], np.int32)
    cv2.fillPoly(mask, [cyp], 255)
    ground = np.zeros_like(canvas)
    ground[:] = (25, 45, 35)
    up = np.zeros((h, w, 2), np.float32)
    up[..., 0], up[..., 1] = -0.9, 0.3
    up += rng.normal(0, 0.25, up.shape).astype(np.float32)
    up /= np.linalg.norm(up, axis=-1, keepdims=True)
    paint_strokes(ground, up, ground_colour, int(3000 * u * u), rng, (int(6 * u) + 2, int(18 * u) + 3),
                  (max(2, int(3 * u)), max(3, int(6 * u))))
    canvas[mask > 0] = ground[mask > 0]
    return canvas


def stroke_painting(image: np.ndarray, seed: int = 0, strokes: int | None = None) -> np.ndarray:
    """`image` (H, W, 3) uint8 repainted with brush strokes along its own edges' flow (colours taken from it)."""
    import cv2

    rng = np.random.default_rng(seed)
    h, w = image.shape[:2]
    gray = cv2.GaussianBlur(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32), (0, 0), 3)
    gy, gx = np.gradient(gray)
    field = np.stack([gx, -gy], axis=-1)  # along the edges, perpendicular to the gradient
    field += np.array([0.0, 0.5], np.float32) * (np.linalg.norm(field, axis=-1, keepdims=True).mean() + 1e-3)
    field /= np.linalg.norm(field, axis=-1, keepdims=True) + 1e-6
    canvas = cv2.GaussianBlur(image, (0, 0), 4)
    n = strokes if strokes is not None else h * w // 30
    return paint_strokes(canvas, field, lambda y, x: image[int(y), int(x)].astype(np.float32), n, rng)


TEXTURES = {"brick": "copper", "grass": "summer", "gravel": "cividis", "immunohistochemistry": None,
            "hubble_deep_field": None, "colorwheel": None}


def texture(name: str, colormap: str | None = "default") -> np.ndarray:
    """A scikit-image texture as an RGB uint8 image; grayscale ones are coloured with a matplotlib colour map."""
    import matplotlib
    import skimage.data

    if name not in TEXTURES:
        raise UnknownNameError(f"unknown texture {name!r}; known: {', '.join(TEXTURES)}")
    img = getattr(skimage.data, name)()
    cmap = TEXTURES[name] if colormap == "default" else colormap
    if img.ndim == 2:
        if cmap is None:
            return np.repeat(img[:, :, None], 3, axis=2)
        rgb = matplotlib.colormaps[cmap](img.astype(np.float32) / 255.0)[..., :3]
        return (rgb * 255 + 0.5).astype(np.uint8)
    return img[..., :3]


STYLES = ("swirl", "strokes-coffee", *TEXTURES)


def make_style(name: str, size: int = 512, seed: int = 0) -> np.ndarray:
    """A built-in style image by name: "swirl", "strokes-coffee", or a texture name (see `STYLES`)."""
    if name == "swirl":
        return swirl_painting(size, seed)
    if name == "strokes-coffee":
        import skimage.data

        return stroke_painting(skimage.data.coffee(), seed)
    if name in TEXTURES:
        return texture(name)
    raise UnknownNameError(f"unknown built-in style {name!r}; known: {', '.join(STYLES)}")

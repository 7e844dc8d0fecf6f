"""Edge detection with hand-made 3x3 filters, and learning such a filter by gradient descent.

The course's "convolution" is a cross-correlation: the filter slides over the image unflipped, and each output
is sum_ij image[y + i, x + j] * kernel[i, j]. That is also what `torch.nn.functional.conv2d` computes;
the convolution of signal processing (`scipy.ndimage.convolve`, `scipy.signal.convolve2d`) flips the kernel
first, which changes the sign of every edge filter here. This module uses cross-correlation throughout.

Sign convention (the course's): the vertical filter [[1, 0, -1], [1, 0, -1], [1, 0, -1]] responds positively
where the image goes from light (left) to dark (right), and negatively for dark to light; the horizontal
filter (its transpose) is positive for light above dark. `polarity="dark-to-light"` flips the kernel's sign;
`absolute=True` keeps the strength of an edge whichever way it goes.

Example:
    >>> import numpy as np
    >>> image = np.zeros((6, 6)); image[:, :3] = 10          # 10s on the left, 0s on the right
    >>> cross_correlate2d(image, get_filter("basic"))[0]    # the course's 4x4 output, 30s in the middle
    array([ 0., 30., 30.,  0.])
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

import numpy as np

from cnnkit.errors import InputError, UnknownNameError
from cnnkit.threads import torch_threads

# Vertical-edge kernels, light-to-dark positive; the horizontal ones are their transposes.
FILTERS: dict[str, np.ndarray] = {
    # the course's first edge detector
    "basic": np.array([[1, 0, -1], [1, 0, -1], [1, 0, -1]], dtype=np.float64),
    # Prewitt's operator is the same kernel under its usual name (scipy.ndimage.prewitt: same up to sign)
    "prewitt": np.array([[1, 0, -1], [1, 0, -1], [1, 0, -1]], dtype=np.float64),
    # more weight on the centre row: a little smoothing across the edge, less noise
    "sobel": np.array([[1, 0, -1], [2, 0, -2], [1, 0, -1]], dtype=np.float64),
    # weights tuned for rotation invariance: edges at 45 degrees respond closer to straight ones
    "scharr": np.array([[3, 0, -3], [10, 0, -10], [3, 0, -3]], dtype=np.float64),
}
DIRECTIONS = ("vertical", "horizontal", "both")
POLARITIES = ("light-to-dark", "dark-to-light")


def list_filters() -> list[str]:
    """Names of the hand-made filters."""
    return list(FILTERS)


def get_filter(name: str = "sobel", direction: str = "vertical", polarity: str = "light-to-dark") -> np.ndarray:
    """A 3x3 edge kernel (float64), to be applied by cross-correlation.

    Args:
        name: "basic", "prewitt", "sobel" or "scharr".
        direction: "vertical" (finds vertical edges, i.e. changes from left to right) or "horizontal".
        polarity: "light-to-dark" (positive where brightness falls left to right / top to bottom) or
            "dark-to-light" (the negated kernel).

    Raises:
        UnknownNameError: an unknown filter name (the message lists the known ones).
        InputError: a direction or polarity that does not exist ("both" is not a single kernel).
    """
    if name not in FILTERS:
        close = difflib.get_close_matches(str(name), FILTERS, n=1, cutoff=0.5)
        hint = f"did you mean {close[0]}? " if close else ""
        raise UnknownNameError(f"unknown edge filter {name!r}; {hint}known filters: {', '.join(FILTERS)}")
    if direction not in ("vertical", "horizontal"):
        raise InputError(f"a single kernel has direction 'vertical' or 'horizontal', got {direction!r}")
    _check_choice("polarity", polarity, POLARITIES)
    kernel = FILTERS[name] if direction == "vertical" else FILTERS[name].T
    return (kernel if polarity == "light-to-dark" else -kernel).copy()


def to_grayscale(image: np.ndarray) -> np.ndarray:
    """Gray levels in [0, 1] (float64, H x W) from an (H, W), (H, W, 3) or (H, W, 4) image.

    Colour images are weighted 0.299 R + 0.587 G + 0.114 B (ITU-R BT.601 luma, as Pillow's "L" mode); alpha is
    dropped. uint8 images are divided by 255; float images are taken to be in [0, 1] already.
    """
    arr = np.asarray(image)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim == 3 and arr.shape[2] in (3, 4):
        arr = arr[:, :, :3].astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    elif arr.ndim != 2:
        raise InputError(f"expected an image of shape (H, W), (H, W, 3) or (H, W, 4), got {arr.shape}")
    else:
        arr = arr.astype(np.float64)
    if np.issubdtype(np.asarray(image).dtype, np.integer):
        arr = arr / 255.0
    return arr


def cross_correlate2d(image: np.ndarray, kernel: np.ndarray, mode: str = "valid") -> np.ndarray:
    """The course's "convolution": out[y, x] = sum_ij image[y + i, x + j] * kernel[i, j], kernel not flipped.

    Args:
        image: (H, W) array.
        kernel: (kh, kw) array.
        mode: "valid" gives (H - kh + 1, W - kw + 1), the course's n - f + 1; "same" pads by repeating the
            border pixels first so the output is (H, W) and the image's frame is not taken for an edge.

    Returns:
        float64 array.
    """
    img = np.asarray(image, dtype=np.float64)
    k = np.asarray(kernel, dtype=np.float64)
    if img.ndim != 2 or k.ndim != 2:
        raise InputError(f"cross_correlate2d takes a 2-D image and kernel, got {img.shape} and {k.shape}")
    _check_choice("mode", mode, ("valid", "same"))
    kh, kw = k.shape
    if mode == "same":
        top, left = (kh - 1) // 2, (kw - 1) // 2
        img = np.pad(img, ((top, kh - 1 - top), (left, kw - 1 - left)), mode="edge")
    oh, ow = img.shape[0] - kh + 1, img.shape[1] - kw + 1
    if oh < 1 or ow < 1:
        raise InputError(f"a {kh}x{kw} kernel does not fit an image of shape {img.shape}")
    out = np.zeros((oh, ow))
    # one shifted view of the image per kernel tap: vectorised, and the formula above read literally
    for i in range(kh):
        for j in range(kw):
            if k[i, j]:
                out += k[i, j] * img[i:i + oh, j:j + ow]
    return out


def edge_response(image: np.ndarray, filter: str = "sobel", direction: str = "vertical",
                  polarity: str = "light-to-dark", absolute: bool = False, mode: str = "same") -> np.ndarray:
    """The raw response of an edge filter on an image (float64, signed unless `absolute` or "both").

    Args:
        image: any image `to_grayscale` accepts.
        filter: a name from `list_filters()`.
        direction: "vertical", "horizontal", or "both": the gradient magnitude sqrt(v^2 + h^2), never negative.
        polarity: which transition is positive (see `get_filter`); no effect with "both" or `absolute`.
        absolute: keep |response|: edges of either polarity alike.
        mode: "same" (output the size of the image) or "valid" (n - f + 1).
    """
    _check_choice("direction", direction, DIRECTIONS)
    gray = to_grayscale(image)
    if direction == "both":
        v = cross_correlate2d(gray, get_filter(filter, "vertical", polarity), mode)
        h = cross_correlate2d(gray, get_filter(filter, "horizontal", polarity), mode)
        return np.hypot(v, h)
    out = cross_correlate2d(gray, get_filter(filter, direction, polarity), mode)
    return np.abs(out) if absolute else out


def normalize_for_display(response: np.ndarray, signed: bool | None = None, percentile: float = 99.5) -> np.ndarray:
    """Map a filter response into [0, 1] for viewing.

    Signed responses put 0 at mid-gray: positive edges bright, negative edges dark, both on one scale so their
    strengths compare. Non-negative responses go from black (0) to white. The scale is set by the `percentile`-th
    largest magnitude rather than the single largest, so that a few very strong edges do not leave the rest
    nearly invisible; the strongest ones saturate.

    Args:
        response: the filter output.
        signed: treat as signed; default: signed when the response has negative values.
        percentile: magnitude percentile that maps to full white (100: the maximum).
    """
    r = np.asarray(response, dtype=np.float64)
    if signed is None:
        signed = bool((r < 0).any())
    mag = np.abs(r)
    scale = float(np.percentile(mag, percentile)) if r.size else 0.0
    if scale == 0.0:  # fewer edges than the percentile counts: fall back to the maximum
        scale = float(mag.max()) if r.size else 0.0
    if scale == 0.0:  # a flat image has no edges: mid-gray (signed) or black
        return np.full(r.shape, 0.5 if signed else 0.0)
    return np.clip(0.5 + 0.5 * r / scale, 0.0, 1.0) if signed else np.clip(r / scale, 0.0, 1.0)


def edge_image(image: np.ndarray, filter: str = "sobel", direction: str = "vertical",
               polarity: str = "light-to-dark", absolute: bool = False) -> np.ndarray:
    """An edge map ready to save: uint8 (H, W), mid-gray = no edge for signed maps, black = no edge otherwise."""
    r = edge_response(image, filter, direction, polarity, absolute)
    signed = direction != "both" and not absolute
    return (normalize_for_display(r, signed) * 255.0 + 0.5).astype(np.uint8)


def course_example() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The course's 6x6 example: (image with 10s left and 0s right, vertical filter, 4x4 output with 30s)."""
    image = np.zeros((6, 6))
    image[:, :3] = 10.0
    kernel = get_filter("basic", "vertical")
    return image, kernel, cross_correlate2d(image, kernel)


@dataclass
class LearnedFilter:
    """The result of `learn_edge_filter`.

    Attributes:
        kernel: the learned 3x3 kernel.
        target: the kernel it was trained to reproduce.
        bias: the learned bias (None when trained without one).
        losses: mean squared error at every step, first to last.
    """

    kernel: np.ndarray
    target: np.ndarray
    bias: float | None
    losses: list[float]

    @property
    def max_error(self) -> float:
        """Largest absolute difference between the learned and the target kernel."""
        return float(np.abs(self.kernel - self.target).max())


def learn_edge_filter(image: np.ndarray, target_filter: str | np.ndarray = "sobel", steps: int = 400,
                      lr: float = 0.2, seed: int = 0, *, bias: bool = False, momentum: float = 0.9) -> LearnedFilter:
    """Learn a 3x3 filter by gradient descent so that conv(image) matches conv(image, target_filter).

    The course's point: a network does not need hand-made filters; it learns them from data. Here a single 3x3
    convolution (torch, random start) is trained with SGD and momentum on the mean squared error between its
    output and the target filter's output on `image`. The image is standardised (zero mean, unit variance)
    first: then the curvature of the loss is at most 2 x 9, so the default step is stable on any image.

    Smooth images converge more slowly (neighbouring pixels are nearly equal, so some kernel directions are
    hardly constrained); a 128x128 photo reaches errors below 1e-3 in the default 400 steps, in about a second.

    Args:
        image: any image `to_grayscale` accepts (at least 3x3).
        target_filter: a filter name (vertical, light-to-dark) or a 3x3 array.
        steps: gradient-descent steps.
        lr: learning rate.
        seed: seeds the random starting kernel.
        bias: learn a bias too (it should go to zero: the target has none).
        momentum: SGD momentum.

    Returns:
        The learned kernel, its target and the loss history.
    """
    import torch
    import torch.nn.functional as F

    target = get_filter(target_filter) if isinstance(target_filter, str) else np.asarray(target_filter, np.float64)
    if target.shape != (3, 3):
        raise InputError(f"target_filter must be 3x3, got shape {target.shape}")
    if steps < 1 or lr <= 0:
        raise InputError(f"steps must be >= 1 and lr > 0, got steps={steps}, lr={lr}")
    gray = to_grayscale(image)
    if min(gray.shape) < 3:
        raise InputError(f"the image must be at least 3x3, got {gray.shape}")
    std = gray.std()
    x = torch.tensor((gray - gray.mean()) / (std if std > 0 else 1.0), dtype=torch.float32)[None, None]  # (1,1,H,W)
    y = F.conv2d(x, torch.tensor(target, dtype=torch.float32)[None, None])  # the target's cross-correlation

    gen = torch.Generator().manual_seed(seed)
    w = (0.5 * torch.randn(1, 1, 3, 3, generator=gen)).requires_grad_()
    b = torch.zeros(1, requires_grad=True) if bias else None
    params = [w] + ([b] if b is not None else [])
    velocity = [torch.zeros_like(p) for p in params]
    losses = []
    # a 3x3 convolution on a small image is far too small to split across threads
    with torch_threads(1):
        for _ in range(steps):
            loss = F.mse_loss(F.conv2d(x, w, b), y)
            grads = torch.autograd.grad(loss, params)
            with torch.no_grad():  # SGD with momentum, written out (the update torch.optim.SGD makes)
                for p, v, g in zip(params, velocity, grads, strict=True):
                    v.mul_(momentum).add_(g)
                    p.sub_(lr * v)
            losses.append(loss.item())
    return LearnedFilter(
        kernel=w.detach()[0, 0].double().numpy(), target=target,
        bias=float(b.detach()) if b is not None else None, losses=losses,
    )


def _check_choice(what: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise InputError(f"unknown {what} {value!r}; choose one of {', '.join(choices)}")

"""Random augmentations: each samples its parameters once, then applies one deterministic kernel to all targets.

Every transform has
    `sample_params(rng, image_size) -> params` (all the randomness, from a numpy Generator; image_size is the
        (H, W) of the image it will get), and
    `apply(sample, params) -> Sample` (no randomness: the kernels of `cnnkit.augment.functional`).
Calling a transform, or a `Compose` of them, does both, on a float tensor (C, H, W) or a `Sample`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from cnnkit.augment import functional as AF
from cnnkit.augment.pca import IMAGENET_PCA, PCAColourStats
from cnnkit.augment.sample import Sample
from cnnkit.errors import InputError

Size = tuple[int, int]


def _pair(value, name: str, centre: float = 0.0) -> tuple[float, float]:
    """A number v gives (centre - v, centre + v); a pair is kept; used for ranges like degrees=15."""
    if isinstance(value, (int, float)):
        if value < 0:
            raise InputError(f"{name} must be non-negative when given as one number, got {value}")
        return centre - float(value), centre + float(value)
    lo, hi = (float(v) for v in value)
    if lo > hi:
        raise InputError(f"{name} range must be (low, high) with low <= high, got {value}")
    return lo, hi


def _size(size) -> Size | None:
    if size is None:
        return None
    h, w = (size, size) if isinstance(size, (int, np.integer)) else size
    if h < 1 or w < 1:
        raise InputError(f"size must be positive, got {size}")
    return int(h), int(w)


class Transform:
    """Base of every augmentation.

    Args:
        p: probability of applying it (the coin is drawn only when p < 1).
        seed: seed of the transform's own generator, used when it is called on its own (a Compose uses its
            generator for all the transforms it holds).
    """

    def __init__(self, *, p: float = 1.0, seed: int = 0):
        if not 0.0 <= p <= 1.0:
            raise InputError(f"p must be in [0, 1], got {p}")
        self.p = float(p)
        self.seed = seed
        self._rng = np.random.default_rng(seed)

    def sample_params(self, rng: np.random.Generator, image_size: Size) -> dict:
        """Draw the random parameters for an image of size (H, W)."""
        return {}

    def apply(self, sample: Sample, params: dict) -> Sample:
        """Apply the transform with fixed parameters (deterministic)."""
        raise NotImplementedError

    def sample(self, rng: np.random.Generator, image_size: Size) -> dict | None:
        """`sample_params`, or None when the p-coin says skip."""
        if self.p < 1.0 and rng.random() >= self.p:
            return None
        return self.sample_params(rng, image_size)

    def reseed(self, seed: int) -> None:
        """Restart the generator from (this transform's seed, `seed`): used once per loader worker."""
        self._rng = np.random.default_rng([self.seed, seed])

    def __call__(self, x):
        return _run([self], x, self._rng)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_") and k != "seed")
        return f"{type(self).__name__}({args})"


class Identity(Transform):
    """Leaves everything as it is (the spec "none")."""

    def apply(self, sample: Sample, params: dict) -> Sample:
        return sample


class HorizontalFlip(Transform):
    """Mirror left-right with probability p (default 0.5)."""

    def __init__(self, *, p: float = 0.5, seed: int = 0):
        super().__init__(p=p, seed=seed)

    def apply(self, sample: Sample, params: dict) -> Sample:
        return AF.hflip(sample)


class VerticalFlip(Transform):
    """Mirror top-bottom with probability p (default 0.5)."""

    def __init__(self, *, p: float = 0.5, seed: int = 0):
        super().__init__(p=p, seed=seed)

    def apply(self, sample: Sample, params: dict) -> Sample:
        return AF.vflip(sample)


class RandomCrop(Transform):
    """Cut a window of `size` at a uniformly random offset, after padding every side by `padding` pixels.

    Params: {"top", "left", "height", "width"} in the unpadded image's coordinates (negative = in the padding).

    Args:
        size: output (H, W) or one side; None keeps the input size (useful with padding: CIFAR's recipe).
        padding: pixels of `fill` added on each side before cropping.
        fill: value of the padding.
    """

    def __init__(self, size=None, *, padding: int = 0, fill: float = 0.0, p: float = 1.0, seed: int = 0):
        super().__init__(p=p, seed=seed)
        self.size = _size(size)
        if padding < 0:
            raise InputError(f"padding must be 0 or more, got {padding}")
        self.padding = int(padding)
        self.fill = float(fill)

    def sample_params(self, rng, image_size):
        h, w = image_size
        oh, ow = self.size or image_size
        pad = self.padding
        # a window larger than the padded image is placed at a random offset too, the rest filled
        top = int(rng.integers(-pad, h + pad - oh + 1)) if h + 2 * pad >= oh else -int(rng.integers(0, oh - h + 1))
        left = int(rng.integers(-pad, w + pad - ow + 1)) if w + 2 * pad >= ow else -int(rng.integers(0, ow - w + 1))
        return {"top": top, "left": left, "height": oh, "width": ow}

    def apply(self, sample, params):
        return AF.crop(sample, params["top"], params["left"], params["height"], params["width"], fill=self.fill)


class CenterCrop(Transform):
    """Cut the central window of `size` (not random; for evaluation pipelines)."""

    def __init__(self, size, *, seed: int = 0):
        super().__init__(seed=seed)
        self.size = _size(size)

    def sample_params(self, rng, image_size):
        (h, w), (oh, ow) = image_size, self.size
        return {"top": (h - oh) // 2, "left": (w - ow) // 2, "height": oh, "width": ow}

    def apply(self, sample, params):
        return AF.crop(sample, params["top"], params["left"], params["height"], params["width"])


class Resize(Transform):
    """Resize to `size` (H, W) or a square side: bilinear image, nearest masks (not random)."""

    def __init__(self, size, *, seed: int = 0):
        super().__init__(seed=seed)
        self.size = _size(size)

    def apply(self, sample, params):
        return AF.resize(sample, self.size)


class RandomResizedCrop(Transform):
    """Inception-style crop: a window of random area share and aspect ratio, resized to `size`.

    The area share is drawn from `scale`, the aspect ratio log-uniformly from `ratio`; after 10 windows that do
    not fit, the largest central window of an allowed ratio is used (as torchvision does).

    Params: {"top", "left", "height", "width"} of the window, and "size" (the output (H, W)).
    """

    def __init__(self, size=None, *, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3), p: float = 1.0, seed: int = 0):
        super().__init__(p=p, seed=seed)
        self.size = _size(size)
        self.scale = _pair(scale, "scale")
        self.ratio = _pair(ratio, "ratio")
        if not 0 < self.scale[0] <= self.scale[1] <= 1 or self.ratio[0] <= 0:
            raise InputError(f"scale must lie in (0, 1] and ratio be positive, got {scale}, {ratio}")

    def sample_params(self, rng, image_size):
        h, w = image_size
        area = h * w
        log_ratio = np.log(self.ratio)
        for _ in range(10):
            target = area * rng.uniform(*self.scale)
            aspect = np.exp(rng.uniform(*log_ratio))
            cw = int(round(np.sqrt(target * aspect)))
            ch = int(round(np.sqrt(target / aspect)))
            if 0 < cw <= w and 0 < ch <= h:
                top = int(rng.integers(0, h - ch + 1))
                left = int(rng.integers(0, w - cw + 1))
                return {"top": top, "left": left, "height": ch, "width": cw, "size": self.size or image_size}
        in_ratio = w / h
        if in_ratio < self.ratio[0]:
            cw, ch = w, int(round(w / self.ratio[0]))
        elif in_ratio > self.ratio[1]:
            ch, cw = h, int(round(h * self.ratio[1]))
        else:
            cw, ch = w, h
        return {"top": (h - ch) // 2, "left": (w - cw) // 2, "height": ch, "width": cw, "size": self.size or image_size}

    def apply(self, sample, params):
        return AF.resized_crop(sample, params["top"], params["left"], params["height"], params["width"],
                               params["size"])


class Affine(Transform):
    """Random rotation, translation, scaling and shearing, as one matrix about the image centre.

    Params: {"angle", "translate", "scale", "shear", "matrix"}; "matrix" (3x3, input -> output pixel
    coordinates) is all `apply` uses, so consecutive Affine transforms in a Compose fuse into one resampling.

    Args:
        degrees: rotation range in degrees (counter-clockwise positive); a number d means (-d, d).
        translate: largest shift as a share of (W, H): a number t, or (tx, ty).
        scale: (low, high) zoom range; a number is a fixed zoom (1: none).
        shear: shear range in degrees along x: a number s means (-s, s), a pair is (low, high); a pair of
            pairs gives the x and the y ranges.
        fill: value of the uncovered area.
        interpolation: "bilinear" or "nearest".
    """

    def __init__(self, degrees=0.0, *, translate=0.0, scale=1.0, shear=0.0, fill: float = 0.0,
                 interpolation: str = "bilinear", p: float = 1.0, seed: int = 0):
        super().__init__(p=p, seed=seed)
        self.degrees = _pair(degrees, "degrees")
        if isinstance(translate, (int, float)):
            translate = (translate, translate)
        self.translate = tuple(float(t) for t in translate)
        if min(self.translate) < 0 or max(self.translate) > 1:
            raise InputError(f"translate must be shares of the image size in [0, 1], got {translate}")
        self.scale = (float(scale), float(scale)) if isinstance(scale, (int, float)) else _pair(scale, "scale")
        if self.scale[0] <= 0:
            raise InputError(f"scale must stay positive, got {scale}")
        if isinstance(shear, (int, float)) or (len(shear) == 2 and isinstance(shear[0], (int, float))):
            self.shear = (_pair(shear, "shear"), (0.0, 0.0))
        else:
            self.shear = (_pair(shear[0], "shear"), _pair(shear[1], "shear"))
        if interpolation not in ("bilinear", "nearest"):
            raise InputError(f"interpolation must be 'bilinear' or 'nearest', got {interpolation!r}")
        self.fill = float(fill)
        self.interpolation = interpolation

    def sample_params(self, rng, image_size):
        h, w = image_size
        angle = float(rng.uniform(*self.degrees))
        tx = float(rng.uniform(-self.translate[0], self.translate[0]) * w)
        ty = float(rng.uniform(-self.translate[1], self.translate[1]) * h)
        scale = float(rng.uniform(*self.scale))
        shear = (float(rng.uniform(*self.shear[0])), float(rng.uniform(*self.shear[1])))
        matrix = AF.affine_matrix(image_size, angle=angle, translate=(tx, ty), scale=scale, shear=shear)
        return {"angle": angle, "translate": (tx, ty), "scale": scale, "shear": shear, "matrix": matrix}

    def apply(self, sample, params):
        return AF.warp_affine(sample, params["matrix"], fill=self.fill, interpolation=self.interpolation)


class ElasticWarp(Transform):
    """Local warping: a smooth random displacement field (elastic distortion, Simard et al. 2003).

    Random displacements at a coarse grid of control points (one every `spacing` of the image side, drawn
    uniformly within +-`magnitude` of the side) are upsampled bicubically to a dense field: the same
    smoothness as Simard's Gaussian-filtered noise at a fraction of the cost. The image is resampled
    bilinearly, masks with nearest; landmarks and boxes move by the inverse of the same field.

    Params: {"field": float Tensor (2, H, W)}, the backward displacement in pixels (output p reads input
    p + field[:, p]).
    """

    def __init__(self, magnitude: float = 0.03, *, spacing: float = 0.2, fill: float = 0.0, p: float = 1.0,
                 seed: int = 0):
        super().__init__(p=p, seed=seed)
        if magnitude < 0 or not 0 < spacing <= 1:
            raise InputError(f"magnitude must be >= 0 and spacing in (0, 1], got {magnitude}, {spacing}")
        self.magnitude = float(magnitude)
        self.spacing = float(spacing)
        self.fill = float(fill)

    def sample_params(self, rng, image_size):
        h, w = image_size
        side = min(h, w)
        gh = max(2, int(round(h / (self.spacing * side))) + 1)
        gw = max(2, int(round(w / (self.spacing * side))) + 1)
        coarse = torch.from_numpy(rng.uniform(-1, 1, (2, gh, gw)).astype(np.float32)) * (self.magnitude * side)
        return {"field": AF.upsample_bicubic(coarse, (h, w))}

    def apply(self, sample, params):
        return AF.warp_displacement(sample, params["field"], fill=self.fill)


class ColourShift(Transform):
    """Add a random offset to each channel (colour shifting), drawn uniformly from +-`shift`.

    Params: {"offset": float Tensor (3,)}; an image of C channels gets offset[:C].
    """

    def __init__(self, shift: float = 0.1, *, clip: bool = True, p: float = 1.0, seed: int = 0):
        super().__init__(p=p, seed=seed)
        if shift < 0:
            raise InputError(f"shift must be >= 0, got {shift}")
        self.shift = float(shift)
        self.clip = clip

    def sample_params(self, rng, image_size):
        # three offsets whatever the image: sample_params sees only the size; a grayscale image uses the first
        return {"offset": torch.from_numpy(rng.uniform(-self.shift, self.shift, 3).astype(np.float32))}

    def apply(self, sample, params):
        c = sample.image.shape[0]
        if c > params["offset"].numel():
            raise InputError(f"colour shift handles 1 or 3 channels, got {c}")
        return AF.add_colour(sample, params["offset"][:c], clip=self.clip)


class PCAColour(Transform):
    """AlexNet's "fancy PCA": add sum_k alpha_k * lambda_k * p_k to every pixel, alpha_k ~ N(0, alpha_std).

    p_k, lambda_k are the principal components of the data set's RGB values (`fit_pca_colour`); ImageNet's
    when none are given. Needs 3-channel images.

    Params: {"alpha": (3,) array, "delta": float Tensor (3,)} (delta = eigvecs @ (alpha * eigvals)).
    """

    def __init__(self, stats: PCAColourStats | None = None, *, alpha_std: float = 0.1, clip: bool = True,
                 p: float = 1.0, seed: int = 0):
        super().__init__(p=p, seed=seed)
        if alpha_std < 0:
            raise InputError(f"alpha_std must be >= 0, got {alpha_std}")
        self.stats = stats or IMAGENET_PCA
        self.alpha_std = float(alpha_std)
        self.clip = clip

    def sample_params(self, rng, image_size):
        alpha = rng.normal(0.0, self.alpha_std, 3)
        return {"alpha": alpha, "delta": torch.from_numpy(self.stats.delta(alpha).astype(np.float32))}

    def apply(self, sample, params):
        if sample.image.shape[0] != 3:
            raise InputError(f"PCA colour augmentation needs RGB images, got {sample.image.shape[0]} channel(s)")
        return AF.add_colour(sample, params["delta"], clip=self.clip)


class SanitizeBoxes(Transform):
    """Drop boxes narrower or shorter than `min_size` pixels (e.g. cropped away), with their labels and
    per-box landmarks (N, K, 2). Not random."""

    def __init__(self, min_size: float = 1.0, *, seed: int = 0):
        super().__init__(seed=seed)
        self.min_size = float(min_size)

    def apply(self, sample, params):
        if sample.boxes is None:
            return sample
        b = sample.boxes
        keep = ((b[:, 2] - b[:, 0]) >= self.min_size) & ((b[:, 3] - b[:, 1]) >= self.min_size)
        changes = {"boxes": b[keep]}
        if sample.labels is not None and len(sample.labels) == len(b):
            changes["labels"] = sample.labels[keep]
        if sample.landmarks is not None and sample.landmarks.ndim == 3 and len(sample.landmarks) == len(b):
            changes["landmarks"] = sample.landmarks[keep]
        return sample.replace(**changes)


class Compose(Transform):
    """Apply transforms in order, drawing every random parameter from one seeded generator.

    Consecutive `Affine` transforms with the same fill and interpolation are fused: their matrices are
    multiplied and the image is resampled once (sharper, faster), with the same result for boxes and
    landmarks as applying them one by one.
    """

    def __init__(self, transforms: Sequence[Transform], *, seed: int = 0):
        super().__init__(seed=seed)
        self.transforms = list(transforms)

    def __call__(self, x):
        return _run(self.transforms, x, self._rng)

    def __len__(self) -> int:
        return len(self.transforms)

    def __repr__(self) -> str:
        inner = ", ".join(repr(t) for t in self.transforms)
        return f"Compose([{inner}], seed={self.seed})"


def _run(transforms: Sequence[Transform], x, rng: np.random.Generator):
    """Apply `transforms` to a tensor (C, H, W) or a Sample; returns the same kind."""
    is_tensor = isinstance(x, torch.Tensor)
    if not is_tensor and not isinstance(x, Sample):
        raise InputError(f"augmentations take a float tensor (C, H, W) or a Sample, got {type(x).__name__}")
    sample = Sample(x) if is_tensor else x
    i = 0
    while i < len(transforms):
        t = transforms[i]
        if isinstance(t, Compose):
            sample = _run(t.transforms, sample, rng)
            i += 1
            continue
        if isinstance(t, Affine):
            # gather the run of compatible Affine transforms and resample once with the product matrix
            matrix, j = np.eye(3), i
            while (j < len(transforms) and isinstance(transforms[j], Affine)
                   and transforms[j].fill == t.fill and transforms[j].interpolation == t.interpolation):
                params = transforms[j].sample(rng, sample.size)
                if params is not None:
                    matrix = params["matrix"] @ matrix
                j += 1
            if not np.allclose(matrix, np.eye(3)):
                sample = t.apply(sample, {"matrix": matrix})
            i = j
            continue
        params = t.sample(rng, sample.size)
        if params is not None:
            sample = t.apply(sample, params)
        i += 1
    return sample.image if is_tensor else sample

"""Neural style transfer: gradient descent on the generated image's pixels.

    from cnnkit.style.transfer import StyleConfig, style_transfer
    result = style_transfer(content_rgb, [style_rgb], StyleConfig(size=256, steps=300))
    save_image("out.png", result.image)

The generated image G starts from the content image (default), from noise, or from the content plus noise (the
course's 0.6 noise ratio), and is optimised with Adam or L-BFGS to lower
``alpha J_content + beta J_style + tv_weight TV`` (see `cnnkit.style.costs`) measured on a frozen network's
named layers (`cnnkit.style.features`). Pixels live in [0, 1] RGB and are clamped after every step; the
network's own preprocessing is applied inside the loss.

For outputs larger than `StyleConfig.max_single_scale`, the image is optimised coarse to fine: a small version
first, then each result upsampled (x2) as the start of the next scale, with fewer steps at the expensive sizes.
At scales larger than `tile`, the gradient is computed tile by tile (Gram matrices summed over tiles give the
shared dJ/dGram, then each tile's backward pass), so memory stays bounded by the tile size.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from cnnkit.errors import InputError
from cnnkit.ops.gram import gram_matrix
from cnnkit.style import costs
from cnnkit.style.features import FeatureExtractor, InputNorm, layer_geometry, load_network

__all__ = ["DEFAULT_MODEL", "DEFAULT_WEIGHTS", "StyleConfig", "StyleResult", "prepare_image", "style_transfer"]

DEFAULT_MODEL = "vgg16_hed"  # HED's VGG-16 convolutions: the pretrained network that ships offline
DEFAULT_WEIGHTS = "hed"
INITS = ("content", "noise", "content+noise")
OPTIMIZERS = ("adam", "lbfgs")


@dataclass
class StyleConfig:
    """Everything a style transfer run depends on (defaults: the best-looking choice measured, see the README).

    Attributes:
        size: longer side of the output in pixels (the content image is resized to it, keeping its aspect).
        steps: optimisation steps (at the finest scale's share, see `scale_steps`).
        model: zoo name, or a cnnkit model file.
        weights: pretrained tag ("hed", "imagenet") or a weights file; None = random weights.
        content_layer: the layer J_content compares (a deep one keeps the layout, not the pixels).
        style_layers: the layers J_style compares, shallow (colours, fine strokes) to deep (larger motifs).
        style_layer_weights: lambda^[l] of each style layer; None = equal weights summing to 1 (the course: 0.2).
        alpha: weight of the content cost (the course: 10).
        beta: weight of the style cost (the course: 40).
        tv_weight: weight of the total variation (mean squared neighbour difference of [0, 1] pixels).
        normalization: "course" or "gatys" (the paper's content cost, see `cnnkit.style.costs`).
        init: "content", "noise" or "content+noise".
        noise_ratio: share of noise in "content+noise" (the course: 0.6).
        optimizer: "adam" or "lbfgs".
        lr: Adam's step size, in [0, 1] pixel units (Adam's steps do not depend on the costs' scale).
        style_weights: weight of each style image (None = equal); their style costs are mixed with these.
        preserve_colors: transfer on luminance only and keep the content's colours (Gatys et al. 2016).
        seed: seeds the noise; the same seed gives the same image.
        frames_every: keep a frame of G every N steps (0 = none), for a strip or an animation.
        max_single_scale: larger outputs are optimised coarse to fine, starting at or below this size.
        scale_steps: share of `steps` at each scale after the first (the finest ones cost most per step).
        tile: at scales whose longer side exceeds this, the gradient is computed tile by tile (bounded memory).
        tile_halo: context pixels added around each tile (the deepest layers' windows reach further; their
            border effect on the gradient is small).
        tile_exact: recompute the Gram matrices of the current image before every tiled step (one more forward
            pass); by default the previous step's are used for dJ/dGram, which costs nothing extra.
        channels_last: run the network in channels-last memory format (no faster than NCHW for VGG on the CPU
            measured, see benchmarks/bench_style.py; off by default).
        bf16: run the network in bfloat16 autocast; None (default) = when the CPU has bf16 instructions
            (AVX512-BF16, AMX), where it took 0.47 s of CPU per 256-px step against 0.81 s in fp32. The costs and
            Gram matrices stay in float32.
    """

    size: int = 256
    steps: int = 300
    model: str = DEFAULT_MODEL
    weights: str | None = DEFAULT_WEIGHTS
    content_layer: str = "relu4_2"
    style_layers: tuple[str, ...] = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
    style_layer_weights: tuple[float, ...] | None = None
    alpha: float = costs.ALPHA
    beta: float = costs.BETA
    tv_weight: float = 1.0
    normalization: str = "course"
    init: str = "content"
    noise_ratio: float = 0.6
    optimizer: str = "adam"
    lr: float = 0.02
    style_weights: tuple[float, ...] | None = None
    preserve_colors: bool = False
    seed: int = 0
    frames_every: int = 0
    max_single_scale: int = 256
    scale_steps: float = 0.5
    tile: int = 512
    tile_halo: int = 32
    tile_exact: bool = False
    channels_last: bool = False
    bf16: bool | None = None


@dataclass
class StyleResult:
    """What `style_transfer` returns.

    Attributes:
        image: the generated image, (H, W, 3) float32 in [0, 1].
        history: one dict per step: step, scale, content, style, tv, total (the costs before that step).
        frames: (step, image) pairs kept every `frames_every` steps, and the final image.
        seconds: wall time of the optimisation (preparation excluded).
        seconds_per_step: mean time per step at each scale's size, {size: seconds}.
        notes: what was changed about the inputs (resized style, grayscale converted), one line each.
        network: what was loaded, one line.
    """

    image: np.ndarray
    history: list[dict[str, float]] = field(default_factory=list)
    frames: list[tuple[int, np.ndarray]] = field(default_factory=list)
    seconds: float = 0.0
    seconds_per_step: dict[int, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    network: str = ""


# ---------------------------------------------------------------------------------------------------------------------
# Images


def prepare_image(image: np.ndarray, what: str, notes: list[str]) -> np.ndarray:
    """An (H, W, 3) float32 RGB image in [0, 1] from uint8/float, grayscale or RGBA input; changes go to `notes`."""
    img = np.asarray(image)
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.ndim == 2:
        notes.append(f"{what} image is grayscale: converted to RGB (three equal channels)")
        img = np.repeat(img[:, :, None], 3, axis=2)
    if img.ndim != 3 or img.shape[2] not in (3, 4):
        raise InputError(f"{what} image must be (H, W), (H, W, 3) or (H, W, 4), got shape {img.shape}")
    if img.shape[2] == 4:
        notes.append(f"{what} image has an alpha channel: dropped")
        img = img[:, :, :3]
    if img.dtype == np.uint8:
        return img.astype(np.float32) / 255.0
    return np.clip(img.astype(np.float32), 0.0, 1.0)


def _to_tensor(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)[None].float().contiguous()  # (1, 3, H, W)


def _to_numpy(x: torch.Tensor) -> np.ndarray:
    return x[0].detach().float().clamp(0, 1).permute(1, 2, 0).numpy().copy()  # (H, W, 3)


def _resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False).clamp(0, 1)


def _fit(h: int, w: int, longer: int) -> tuple[int, int]:
    """(h, w) scaled so that the longer side is `longer`."""
    s = longer / max(h, w)
    return max(1, round(h * s)), max(1, round(w * s))


# YIQ (NTSC): Y is the luminance; I and Q carry the colour.
_RGB2YIQ = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])


def rgb_to_yiq(x: torch.Tensor) -> torch.Tensor:
    """Tensor[B, 3, H, W] RGB -> YIQ."""
    return torch.einsum("ij,bjhw->bihw", _RGB2YIQ.to(x.dtype), x)


def yiq_to_rgb(x: torch.Tensor) -> torch.Tensor:
    """Tensor[B, 3, H, W] YIQ -> RGB."""
    return torch.einsum("ij,bjhw->bihw", torch.linalg.inv(_RGB2YIQ).to(x.dtype), x)


def _luminance_only(content: torch.Tensor, style: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Both as gray RGB images; the style's luminance matched to the content's mean and spread (Gatys et al. 2016)."""
    yc = rgb_to_yiq(content)[:, :1]
    ys = rgb_to_yiq(style)[:, :1]
    ys = (ys - ys.mean()) / (ys.std() + 1e-6) * yc.std() + yc.mean()
    return yc.expand(-1, 3, -1, -1).clamp(0, 1), ys.expand(-1, 3, -1, -1).clamp(0, 1)


# ---------------------------------------------------------------------------------------------------------------------
# The loss


class _Loss:
    """J(G) for fixed targets at one scale: content activations and Gram matrices of the style images."""

    def __init__(self, extractor: FeatureExtractor, cfg: StyleConfig, content: torch.Tensor,
                 styles: list[torch.Tensor], style_weights: list[float], tile: int | None,
                 strides: dict[str, int], halo: int) -> None:
        self.extractor, self.cfg, self.tile = extractor, cfg, tile
        self.strides, self.halo = strides, halo  # total stride of each layer; context pixels around a tile
        self._grams: dict[str, torch.Tensor] | None = None  # the last tiled step's Gram matrices
        self.bf16 = use_bf16(cfg.bf16)
        n = len(cfg.style_layers)
        lw = cfg.style_layer_weights or tuple(1.0 / n for _ in range(n))
        self.layer_weights = dict(zip(cfg.style_layers, lw, strict=True))
        with torch.no_grad():
            self.a_C = self._features(content, [cfg.content_layer])[cfg.content_layer]
            # One target Gram per layer: the style images' Grams, rescaled to G's number of positions and mixed
            # by the style weights. (Mixing the costs instead would differ by a constant only.)
            self.G_S: dict[str, torch.Tensor] = {}
            for s, weight in zip(styles, style_weights, strict=True):
                feats = self._features(s, cfg.style_layers)
                for name in cfg.style_layers:
                    a = feats[name]
                    g = gram_matrix(a)[0] * weight
                    self.G_S[name] = self.G_S.get(name, 0) + g / (a.shape[-2] * a.shape[-1])
            self.positions = {}
            probe = self._features(content, cfg.style_layers)
            for name in cfg.style_layers:
                hw = probe[name].shape[-2] * probe[name].shape[-1]
                self.positions[name] = (probe[name].shape[-2], probe[name].shape[-1])
                self.G_S[name] = self.G_S[name] * hw

    def _features(self, x: torch.Tensor, layers: Sequence[str]) -> dict[str, torch.Tensor]:
        layers = list(layers)
        if self.tile is not None and max(x.shape[-2:]) > self.tile:
            return self._tiled_features(x, layers)
        return self._run(x, layers)

    def _run(self, x: torch.Tensor, layers: list[str]) -> dict[str, torch.Tensor]:
        if self.cfg.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
            out = self.extractor(x)
        return {k: out[k].float() for k in layers}

    # -- tiles: activations of the whole image assembled from overlapping crops (no_grad use only)
    def _tiles(self, h: int, w: int):
        """(y0, y1, x0, x1) cores covering the image, each with its crop (halo added) and the layers' strides."""
        halo, m = self.halo, max(self.strides.values())

        def length(n: int) -> int:  # equal tiles of at most `tile` pixels, a multiple of the largest stride
            pieces = math.ceil(n / self.tile)
            return math.ceil(n / pieces / m) * m

        ty, tx = length(h), length(w)
        for y0 in range(0, h, ty):
            for x0 in range(0, w, tx):
                y1, x1 = min(y0 + ty, h), min(x0 + tx, w)
                cy0, cx0 = max(0, y0 - halo), max(0, x0 - halo)
                cy1, cx1 = min(h, y1 + halo), min(w, x1 + halo)
                yield (y0, y1, x0, x1), (cy0, cy1, cx0, cx1)

    def _tiled_features(self, x: torch.Tensor, layers: list[str]) -> dict[str, torch.Tensor]:
        h, w = x.shape[-2:]
        out: dict[str, torch.Tensor] = {}
        for (y0, y1, x0, x1), (cy0, cy1, cx0, cx1) in self._tiles(h, w):
            feats = self._run(x[..., cy0:cy1, cx0:cx1], layers)
            for name in layers:
                s = self.strides[name]
                a = feats[name][..., (y0 - cy0) // s:(y1 - cy0 + s - 1) // s, (x0 - cx0) // s:(x1 - cx0 + s - 1) // s]
                if name not in out:
                    out[name] = x.new_zeros(1, a.shape[1], math.ceil(h / s), math.ceil(w / s))
                out[name][..., y0 // s:y0 // s + a.shape[-2], x0 // s:x0 // s + a.shape[-1]] = a
        return out

    def costs(self, feats: dict[str, torch.Tensor], x: torch.Tensor) -> dict[str, torch.Tensor]:
        cfg = self.cfg
        jc = costs.content_cost(self.a_C, feats[cfg.content_layer], cfg.normalization)
        js = 0
        for name, lw in self.layer_weights.items():
            nh, nw = feats[name].shape[-2:]
            js = js + lw * costs.style_cost_from_gram(self.G_S[name], gram_matrix(feats[name])[0], nh, nw)
        tv = costs.total_variation(x)
        total = costs.total_cost(jc, js, cfg.alpha, cfg.beta) + cfg.tv_weight * tv
        return {"content": jc, "style": js, "tv": tv, "total": total}

    def layers(self) -> list[str]:
        return list(dict.fromkeys([self.cfg.content_layer, *self.cfg.style_layers]))

    def value_and_grad(self, x: torch.Tensor) -> dict[str, float]:
        """Costs at x; fills x.grad (x is a leaf that requires grad)."""
        if self.tile is None or max(x.shape[-2:]) <= self.tile:
            parts = self.costs(self._run(x, self.layers()), x)
            parts["total"].backward()
            return {k: float(v.detach()) for k, v in parts.items()}
        return self._tiled_value_and_grad(x)

    def _tiled_value_and_grad(self, x: torch.Tensor) -> dict[str, float]:
        """J's gradient through the tiles' activations (exact up to the halo's border effects).

        G_G = sum over tiles of their Gram matrices, so dJ/dx = sum over tiles of d<dJ/dG_G, G_tile>/dx plus the
        tiles' content gradients. dJ/dG_G comes from the Gram matrices of the previous step (pass 2 sums them as
        it goes), or, with `tile_exact` and on the first step, from a no-grad pass over the tiles first.
        """
        cfg, layers = self.cfg, self.layers()
        h, w = x.shape[-2:]
        grams = self._grams
        if cfg.tile_exact or grams is None:
            grams = {}
            with torch.no_grad():
                for core, crop in self._tiles(h, w):
                    feats = self._crop(self._run(x[..., crop[0]:crop[1], crop[2]:crop[3]], layers), core, crop)
                    for name in cfg.style_layers:
                        grams[name] = grams.get(name, 0) + gram_matrix(feats[name])[0]
        gg = {k: v.clone().requires_grad_(True) for k, v in grams.items()}
        js = 0
        for name, lw in self.layer_weights.items():
            nh, nw = self.positions[name]
            js = js + lw * costs.style_cost_from_gram(self.G_S[name], gg[name], nh, nw)
        (cfg.beta * js).backward()
        dG = {k: v.grad for k, v in gg.items()}
        jc = 0.0
        new_grams: dict[str, torch.Tensor] = {}
        for core, crop in self._tiles(h, w):
            xt = x[..., crop[0]:crop[1], crop[2]:crop[3]]
            feats = self._crop(self._run(xt, layers), core, crop)
            s = self.strides[cfg.content_layer]
            a_C = self.a_C[..., core[0] // s:core[0] // s + feats[cfg.content_layer].shape[-2],
                           core[2] // s:core[2] // s + feats[cfg.content_layer].shape[-1]]
            sq = (a_C - feats[cfg.content_layer]).pow(2).sum()
            c, nh, nw = self.a_C.shape[-3:]
            part = sq / (4.0 * c * nh * nw) if cfg.normalization == "course" else 0.5 * sq
            surrogate = cfg.alpha * part
            for name in cfg.style_layers:
                g = gram_matrix(feats[name])[0]
                new_grams[name] = new_grams.get(name, 0) + g.detach()
                surrogate = surrogate + (dG[name] * g).sum()
            surrogate.backward()
            jc += float(part.detach())
        self._grams = new_grams
        tv = costs.total_variation(x)
        (cfg.tv_weight * tv).backward()
        js, tv = float(js.detach()), float(tv.detach())
        total = cfg.alpha * jc + cfg.beta * js + cfg.tv_weight * tv
        return {"content": jc, "style": js, "tv": tv, "total": total}

    def _crop(self, feats, core, crop):
        out = {}
        for name, a in feats.items():
            s = self.strides[name]
            out[name] = a[..., (core[0] - crop[0]) // s:(core[1] - crop[0] + s - 1) // s,
                          (core[2] - crop[2]) // s:(core[3] - crop[2] + s - 1) // s]
        return out


# ---------------------------------------------------------------------------------------------------------------------
# The optimisation


def use_bf16(choice: bool | None) -> bool:
    """`choice`, or for None whether this CPU computes bfloat16 natively (oneDNN's check)."""
    if choice is not None:
        return bool(choice)
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def _scales(size: int, max_single: int) -> list[int]:
    """Longer sides of the scales, coarse to fine: halving from `size` until at or below `max_single`."""
    sizes = [size]
    while sizes[-1] > max_single:
        sizes.append(math.ceil(sizes[-1] / 2))
    return sizes[::-1]


def _check_size(extractor: FeatureExtractor, strides: dict[str, int], hw: tuple[int, int], model_name: str) -> None:
    """One line when the image is too small for the deepest layer (every layer needs at least one unit)."""
    layers = list(strides)
    need = max(strides.values())
    if min(hw) < need:
        raise InputError(f"size {min(hw)} px is too small for {model_name}'s layer(s) {', '.join(layers)}: they need "
                         f"at least {need} px on the shorter side; use --size {need * max(hw) // min(hw) + 1} "
                         "or more, or shallower layers")
    try:
        with torch.no_grad():
            extractor(torch.zeros(1, 3, *hw))
    except RuntimeError as e:
        raise InputError(f"size {hw[1]}x{hw[0]} is too small for {model_name} ({str(e).splitlines()[0][:100]}); "
                         "use a larger --size") from None


def style_transfer(
    content: np.ndarray,
    styles: Sequence[np.ndarray],
    config: StyleConfig | None = None,
    *,
    network: tuple | None = None,
    progress: bool | Callable[[int, dict[str, float]], None] = False,
    frame_callback: Callable[[int, np.ndarray], None] | None = None,
) -> StyleResult:
    """Generate an image with the content of `content` and the style of `styles`.

    Args:
        content: (H, W, 3) or (H, W) image, uint8 or float in [0, 1].
        styles: one or more style images, any size (each is resized to the output's longer side; said in notes).
        config: the settings (defaults: `StyleConfig()`).
        network: (model, InputNorm) to use instead of loading `config.model` (tests, repeated runs).
        progress: True shows a tqdm bar with the costs; a callable gets (step, costs) after every step.
        frame_callback: called with (step, image) for each kept frame (writing them as they come).

    Returns:
        A `StyleResult`.

    Raises:
        InputError: unknown layer or option names, no style image, or an output too small for the network.
    """
    cfg = config or StyleConfig()
    notes: list[str] = []
    if not styles:
        raise InputError("give at least one style image")
    if cfg.init not in INITS:
        raise InputError(f"unknown init {cfg.init!r}; use one of {', '.join(INITS)}")
    if cfg.optimizer not in OPTIMIZERS:
        raise InputError(f"unknown optimizer {cfg.optimizer!r}; use one of {', '.join(OPTIMIZERS)}")
    if not cfg.style_layers:
        raise InputError("give at least one style layer")
    if cfg.style_layer_weights is not None and len(cfg.style_layer_weights) != len(cfg.style_layers):
        raise InputError(f"{len(cfg.style_layer_weights)} style-layer weights for {len(cfg.style_layers)} layers")
    sw = list(cfg.style_weights) if cfg.style_weights is not None else [1.0] * len(styles)
    if len(sw) != len(styles) or min(sw) < 0 or sum(sw) <= 0:
        raise InputError(f"give one non-negative style weight per style image ({len(styles)}), not all zero")
    sw = [v / sum(sw) for v in sw]

    if network is None:
        net = load_network(cfg.model, cfg.weights)
        model, norm, described = net.model, net.norm, net.description
    else:
        model, norm = network
        described = type(model).__name__
    layers = list(dict.fromkeys([cfg.content_layer, *cfg.style_layers]))
    extractor = FeatureExtractor(model, layers, norm if isinstance(norm, InputNorm) else InputNorm())
    if cfg.channels_last:
        model.to(memory_format=torch.channels_last)

    c_img = _to_tensor(prepare_image(content, "content", notes))
    s_imgs = [_to_tensor(prepare_image(s, f"style {i + 1}", notes)) for i, s in enumerate(styles)]
    H, W = _fit(*c_img.shape[-2:], cfg.size)
    if (H, W) != tuple(c_img.shape[-2:]):
        notes.append(f"content image resized from {c_img.shape[-1]}x{c_img.shape[-2]} to {W}x{H} (--size {cfg.size})")
    # total stride of each layer (one geometry pass per layer, on a small probe: it does not depend on the size)
    strides = {name: layer_geometry(model, name, input_size=(64, 64))[1] for name in layers}
    _check_size(extractor, strides, _fit(H, W, _scales(cfg.size, cfg.max_single_scale)[0]), cfg.model)
    for i, s in enumerate(s_imgs):
        sh, sw_ = _fit(*s.shape[-2:], cfg.size)
        if (sh, sw_) != tuple(s.shape[-2:]):
            notes.append(f"style image {i + 1} resized from {s.shape[-1]}x{s.shape[-2]} to {sw_}x{sh} "
                         "(longer side = output's, so its strokes keep their size relative to the output)")

    color_source = _resize(c_img, (H, W))
    if cfg.preserve_colors:
        notes.append("colours preserved: style transferred on luminance only, the content's colours put back")

    gen = torch.Generator().manual_seed(cfg.seed)
    halo = math.ceil(cfg.tile_halo / max(strides.values())) * max(strides.values())

    result = StyleResult(image=np.zeros((H, W, 3), np.float32), notes=notes, network=described)
    sizes = _scales(cfg.size, cfg.max_single_scale)
    x: torch.Tensor | None = None
    step_total = 0
    start = time.perf_counter()
    bar = None
    if progress is True:
        from tqdm import tqdm

        total_steps = sum(_steps_at(cfg, k) for k in range(len(sizes)))
        bar = tqdm(total=total_steps, desc="style", unit="step", dynamic_ncols=True)
    for k, longer in enumerate(sizes):
        h, w = _fit(H, W, longer)
        c_k = _resize(c_img, (h, w))
        s_k = [_resize(s, _fit(*s.shape[-2:], longer)) for s in s_imgs]
        if cfg.preserve_colors:
            lum = [_luminance_only(c_k, s) for s in s_k]
            c_k, s_k = lum[0][0], [p[1] for p in lum]
        loss = _Loss(extractor, cfg, c_k, s_k, sw, cfg.tile if longer > cfg.tile else None, strides, halo)
        if x is None:
            x = _initial(cfg, c_k, gen)
        else:
            x = _resize(x, (h, w))
        x = x.detach().contiguous().clone().requires_grad_(True)
        steps = _steps_at(cfg, k)
        t0 = time.perf_counter()
        step_total = _optimise(x, loss, cfg, steps, step_total, longer, result, bar, progress, frame_callback,
                               color_source if cfg.preserve_colors else None)
        result.seconds_per_step[longer] = (time.perf_counter() - t0) / max(steps, 1)
    if bar is not None:
        bar.close()
    result.seconds = time.perf_counter() - start
    result.image = _finish(x.detach(), color_source if cfg.preserve_colors else None)
    result.frames.append((step_total, result.image))
    return result


def _steps_at(cfg: StyleConfig, k: int) -> int:
    return cfg.steps if k == 0 else max(1, round(cfg.steps * cfg.scale_steps**k))


def _initial(cfg: StyleConfig, content: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    if cfg.init == "content":
        return content.clone()
    noise = torch.rand(content.shape, generator=gen)
    if cfg.init == "noise":
        return noise
    # the course: uniform noise in [-20, 20] (0-255 pixels) mixed 0.6 : 0.4 with the content image
    noise = content + (noise * 2 - 1) * (20 / 255)
    return (cfg.noise_ratio * noise + (1 - cfg.noise_ratio) * content).clamp(0, 1)


def _finish(x: torch.Tensor, color_source: torch.Tensor | None) -> np.ndarray:
    """G as an image; with colour preservation, G's luminance with the content's I and Q."""
    if color_source is not None:
        y = rgb_to_yiq(x.float())[:, :1]
        iq = rgb_to_yiq(_resize(color_source, tuple(x.shape[-2:])))[:, 1:]
        x = yiq_to_rgb(torch.cat([y, iq], dim=1))
    return _to_numpy(x)


def _optimise(x, loss: _Loss, cfg: StyleConfig, steps: int, step0: int, longer: int, result: StyleResult,
              bar, progress, frame_callback, color_source) -> int:
    """Run `steps` steps on x in place; returns the global step count."""
    step = step0

    def record(parts: dict[str, float]) -> None:
        nonlocal step
        step += 1
        result.history.append({"step": step, "scale": longer, **parts})
        if bar is not None:
            bar.update(1)
            bar.set_postfix(size=longer, content=f"{parts['content']:.3g}", style=f"{parts['style']:.3g}",
                            total=f"{parts['total']:.3g}")
        elif callable(progress):
            progress(step, parts)
        if cfg.frames_every and step % cfg.frames_every == 0:
            frame = _finish(x.detach(), color_source)
            result.frames.append((step, frame))
            if frame_callback is not None:
                frame_callback(step, frame)

    if cfg.optimizer == "adam":
        opt = torch.optim.Adam([x], lr=cfg.lr)
        for _ in range(steps):
            opt.zero_grad(set_to_none=True)
            parts = loss.value_and_grad(x)
            opt.step()
            with torch.no_grad():
                x.clamp_(0, 1)
            record(parts)
        return step
    # L-BFGS: one `step` call runs up to max_iter evaluations; count evaluations as steps.
    opt = torch.optim.LBFGS([x], lr=1.0, max_iter=steps, history_size=20, line_search_fn="strong_wolfe")
    last: dict[str, float] = {}

    def closure():
        opt.zero_grad(set_to_none=True)
        parts = loss.value_and_grad(x)
        last.update(parts)
        if step - step0 < steps:
            record(parts)
        return torch.tensor(parts["total"])

    opt.step(closure)
    with torch.no_grad():
        x.clamp_(0, 1)
    return step

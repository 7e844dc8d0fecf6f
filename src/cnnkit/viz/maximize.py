"""Activation maximisation: an input optimised to excite one unit or one class (Erhan et al. 2009; Simonyan et al.
2013; Yosinski et al. 2015's regularisers).

Plain gradient ascent on pixels finds high-frequency noise that fools the network; three regularisers make the
result look like something: random jitter (the image is shifted by a few pixels every step, so a pattern must work
wherever it lands), an L2 penalty (no extreme pixels) and a little blur every few steps (no pixel-level noise).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from cnnkit.errors import InputError
from cnnkit.style.costs import total_variation
from cnnkit.style.features import IMAGENET_NORM, FeatureExtractor, InputNorm

__all__ = ["maximize"]


def _blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    r = max(1, int(round(2 * sigma)))
    t = torch.arange(-r, r + 1, dtype=x.dtype)
    k = torch.exp(-(t**2) / (2 * sigma**2))
    k = k / k.sum()
    c = x.shape[1]
    x = F.conv2d(F.pad(x, (r, r, 0, 0), mode="reflect"), k.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    return F.conv2d(F.pad(x, (0, 0, r, r), mode="reflect"), k.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)


def maximize(model, *, layer: str | None = None, unit: int | None = None, target_class: int | None = None,
             norm: InputNorm = IMAGENET_NORM, size: int = 128, steps: int = 200, lr: float = 0.05, jitter: int = 8,
             l2: float = 0.05, tv: float = 0.5, blur_every: int = 4, blur_sigma: float = 0.6, where: str = "center",
             seed: int = 0) -> tuple[np.ndarray, list[float]]:
    """An image (size x size) that excites channel `unit` of `layer`, or the logit of `target_class`.

    Args:
        model: the network.
        layer, unit: the channel to excite; `where` = "center" excites the unit at the centre of the map (its
            receptive field is the middle of the image), "mean" the whole channel (a pattern repeated everywhere).
        target_class: excite this output of the model instead (a classifier's class logit).
        norm: the network's preprocessing.
        size: side of the image.
        steps, lr: Adam on [0, 1] pixels.
        jitter: largest random shift (pixels) each step.
        l2: weight of the mean squared distance from mid-gray.
        tv: weight of the total variation.
        blur_every, blur_sigma: a Gaussian blur every N steps (0 = never).
        seed: seeds the start noise and the jitter.

    Returns:
        (image (size, size, 3) float32 in [0, 1], the objective after each step).
    """
    if (target_class is None) == (layer is None):
        raise InputError("give either a layer and unit, or a target class")
    if layer is not None and unit is None:
        raise InputError(f"give the unit (channel) of {layer!r} to maximise")
    if where not in ("center", "mean"):
        raise InputError(f"where must be 'center' or 'mean', got {where!r}")
    gen = torch.Generator().manual_seed(seed)
    x = (0.5 + 0.05 * torch.randn(1, 3, size, size, generator=gen)).requires_grad_(True)
    opt = torch.optim.Adam([x], lr=lr)
    fe = FeatureExtractor(model, [layer], norm) if layer is not None else None
    if fe is None:
        model.eval()
        for p in model.parameters():
            p.requires_grad_(False)
    history = []
    for step in range(steps):
        dy, dx = (int(v) for v in torch.randint(-jitter, jitter + 1, (2,), generator=gen)) if jitter else (0, 0)
        xj = torch.roll(x, shifts=(dy, dx), dims=(2, 3))
        if fe is not None:
            a = fe(xj)[layer]
            if not 0 <= unit < a.shape[1]:
                raise InputError(f"unit {unit} out of range: layer {layer!r} has {a.shape[1]} channels")
            a = a[0, unit]
            objective = a[a.shape[0] // 2, a.shape[1] // 2] if where == "center" else a.mean()
        else:
            logits = model(norm(xj))
            if not 0 <= target_class < logits.shape[1]:
                raise InputError(f"class {target_class} out of range: the model has {logits.shape[1]} classes")
            objective = logits[0, target_class]
        loss = -objective + l2 * (x - 0.5).pow(2).mean() * 100 + tv * total_variation(x) * 100
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            if blur_every and (step + 1) % blur_every == 0:
                x.copy_(_blur(x, blur_sigma))
            x.clamp_(0, 1)
        history.append(float(objective.detach()))
    return x[0].detach().permute(1, 2, 0).numpy().copy(), history

"""Where the network looked: gradient saliency (Simonyan et al. 2013) and Grad-CAM (Selvaraju et al. 2017).

- saliency: ``|d y_c / d x|``, the largest over colour channels, for each pixel: which pixels, changed a little,
  would change the class score most;
- Grad-CAM: for a layer's maps ``A_k`` (B, K, h, w), weights ``alpha_k = mean_ij d y_c / d A_k[i, j]`` and the map
  ``ReLU(sum_k alpha_k A_k)``, upsampled to the image: the regions that raise class c's score.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from cnnkit.errors import InputError
from cnnkit.style.features import IMAGENET_NORM, InputNorm, layer_names, resolve_layer

__all__ = ["default_cam_layer", "grad_cam", "overlay", "saliency"]


def default_cam_layer(model: nn.Module) -> str:
    """The last convolutional block: the last module of `features`, `layer4` (ResNets), or the last Conv2d."""
    feats = getattr(model, "features", None)
    if isinstance(feats, nn.Sequential) and len(feats):
        return f"features.{len(feats) - 1}"
    if hasattr(model, "layer4"):
        return "layer4"
    convs = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise InputError(f"{type(model).__name__} has no convolution for Grad-CAM")
    return convs[-1]


def _input(image: np.ndarray, norm: InputNorm) -> torch.Tensor:
    x = torch.from_numpy(np.array(image, dtype=np.float32)).permute(2, 0, 1)[None] / 255.0  # (1, 3, H, W)
    return norm(x).detach().requires_grad_(True)


def _prepare(model: nn.Module) -> nn.Module:
    model.eval()
    for m in model.modules():  # a hooked map must not be overwritten by an in-place activation after it
        if getattr(m, "inplace", False):
            m.inplace = False
    return model


def grad_cam(model: nn.Module, image: np.ndarray, target: int | None = None, layer: str | None = None,
             norm: InputNorm = IMAGENET_NORM) -> tuple[np.ndarray, int, torch.Tensor]:
    """Grad-CAM of class `target` (default: the predicted one) at `layer` (default `default_cam_layer`).

    Args:
        model: a classifier returning logits (B, classes).
        image: (H, W, 3) uint8, already at the network's input size.
        target: class index.
        layer: layer name (see `cnnkit.style.features.layer_names`).
        norm: the network's preprocessing.

    Returns:
        (cam (H, W) float32 in [0, 1] (all zeros when nothing raises the score), class index, probabilities (C,)).
    """
    model = _prepare(model)
    path = resolve_layer(model, layer or default_cam_layer(model), layer_names(model))
    module = dict(model.named_modules())[path]
    store: dict[str, torch.Tensor] = {}
    handle = module.register_forward_hook(lambda m, i, o: store.__setitem__("A", o))
    try:
        logits = model(_input(image, norm))
    finally:
        handle.remove()
    if logits.dim() != 2:
        raise InputError(f"Grad-CAM needs class scores (B, classes); the model returns shape {tuple(logits.shape)}")
    c = int(logits[0].argmax()) if target is None else int(target)
    if not 0 <= c < logits.shape[1]:
        raise InputError(f"class {c} out of range: the model has {logits.shape[1]} classes")
    A = store["A"]  # (1, K, h, w)
    (dA,) = torch.autograd.grad(logits[0, c], A)
    alpha = dA.mean(dim=(2, 3), keepdim=True)  # (1, K, 1, 1)
    cam = F.relu((alpha * A).sum(1, keepdim=True))  # (1, 1, h, w)
    cam = F.interpolate(cam.detach(), size=image.shape[:2], mode="bilinear", align_corners=False)[0, 0]
    top = float(cam.max())
    cam = cam / top if top > 0 else cam
    return cam.detach().numpy().astype(np.float32), c, torch.softmax(logits[0].detach(), 0)


def saliency(model: nn.Module, image: np.ndarray, target: int | None = None,
             norm: InputNorm = IMAGENET_NORM) -> tuple[np.ndarray, int]:
    """``max_channels |d y_c / d x|`` scaled to [0, 1], (H, W), and the class index c."""
    model = _prepare(model)
    x = _input(image, norm)
    logits = model(x)
    c = int(logits[0].argmax()) if target is None else int(target)
    (g,) = torch.autograd.grad(logits[0, c], x)
    s = g[0].abs().amax(0)
    s = s / s.max() if float(s.max()) > 0 else s
    return s.numpy().astype(np.float32), c


def overlay(image: np.ndarray, heat: np.ndarray, alpha: float = 0.45, cmap: str = "jet") -> np.ndarray:
    """`heat` (H, W) in [0, 1] coloured with `cmap` and blended over `image` (H, W, 3) uint8 -> uint8."""
    import matplotlib

    colour = matplotlib.colormaps[cmap](np.clip(heat, 0, 1))[..., :3]
    img = np.asarray(image, np.float32) / 255.0
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, 2)
    return ((1 - alpha) * img + alpha * colour).clip(0, 1).__mul__(255).round().astype(np.uint8)

"""Test-time augmentation: average the softmax of a model over several views of each image.

"flip" averages the image and its mirror; "10crop" (AlexNet's test procedure) averages the four corner
crops and the centre crop, and the same five of the mirrored image; "5crop" the five crops of a slightly padded
image without mirroring (small shifts: the views for digits and text, whose mirror image is another symbol).
Crops smaller than the image are
resized back to the image's size before the model sees them (so fixed-input networks such as LeNet work
too); `resize=False` feeds them as they are, to a fully convolutional network. With `pad` the image is
first padded with zeros (the mean colour, after normalisation) and the crops default to the image's own
size: the test-time twin of "random crop with padding" training, where the centre crop is the image itself.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from cnnkit.errors import InputError

TTA_MODES = (None, "flip", "5crop", "10crop")


def _size2(size: int | tuple[int, int]) -> tuple[int, int]:
    return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))


def five_crop(images: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """The four corner crops and the centre crop.

    Args:
        images: (B, C, H, W).
        size: crop (h, w), or one int for a square.

    Returns:
        (5, B, C, h, w): top-left, top-right, bottom-left, bottom-right, centre (torchvision's order; the
        centre's offset rounds (H - h) / 2 as torchvision does).
    """
    h, w = _size2(size)
    H, W = images.shape[-2:]
    if not (0 < h <= H and 0 < w <= W):
        raise InputError(f"crop size {h}x{w} does not fit in images of {H}x{W}")
    top, left = int(round((H - h) / 2.0)), int(round((W - w) / 2.0))
    return torch.stack([
        images[..., :h, :w],
        images[..., :h, W - w:],
        images[..., H - h:, :w],
        images[..., H - h:, W - w:],
        images[..., top:top + h, left:left + w],
    ])


def ten_crop(images: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """`five_crop` of the images, then `five_crop` of their mirror images: (10, B, C, h, w)."""
    return torch.cat([five_crop(images, size), five_crop(images.flip(-1), size)])


def tta_views(images: torch.Tensor, mode: str | None, crop_size: int | tuple[int, int] | None = None, *,
              pad: int = 0, resize: bool = True) -> torch.Tensor:
    """The views `predict_tta` averages over: (V, B, C, h, w) with V = 1, 2, 5 or 10."""
    mode = None if mode == "none" else mode
    if mode not in TTA_MODES:
        raise InputError(f"unknown test-time augmentation {mode!r}; choose flip, 5crop, 10crop or none")
    if images.ndim != 4:
        raise InputError(f"images must be (B, C, H, W), got shape {tuple(images.shape)}")
    if pad < 0:
        raise InputError(f"pad must be >= 0, got {pad}")
    if mode is None:
        return images[None]
    if mode == "flip":
        return torch.stack([images, images.flip(-1)])
    H, W = images.shape[-2:]
    if mode == "5crop":  # shifts of 1/16 of the side in each diagonal direction, and the image itself
        if crop_size is None and not pad:
            pad = max(1, round(min(H, W) / 16))
        padded = F.pad(images, (pad, pad, pad, pad)) if pad else images
        return five_crop(padded, crop_size or (H, W))
    if crop_size is None:
        # a crop of 7/8 of the side, AlexNet's 224 of 256; with padding, crops as large as the image itself
        crop_size = (H, W) if pad else (max(1, round(H * 0.875)), max(1, round(W * 0.875)))
    padded = F.pad(images, (pad, pad, pad, pad)) if pad else images
    views = ten_crop(padded, crop_size)  # (10, B, C, h, w)
    if resize and tuple(views.shape[-2:]) != (H, W):
        v, b = views.shape[:2]
        views = F.interpolate(views.flatten(0, 1), size=(H, W), mode="bilinear", align_corners=False)
        views = views.unflatten(0, (v, b))
    return views


@torch.no_grad()
def predict_tta(model: nn.Module, images: torch.Tensor, mode: str | None = None,
                crop_size: int | tuple[int, int] | None = None, *, pad: int = 0, resize: bool = True) -> torch.Tensor:
    """Class probabilities of `model`, averaged over test-time views of each image.

    Args:
        model: a classifier returning logits (B, K); it runs in eval mode (its mode is restored after).
        images: (B, C, H, W), normalised as the model expects.
        mode: None or "none" (the image alone), "flip" (image and mirror) or "10crop" (corners, centre, and mirrors).
        crop_size: "10crop" crop (h, w) or int; default 7/8 of the image side (the image size with `pad`).
        pad: zero padding added around the images before cropping.
        resize: resize crops to the image size before the model (needed by fixed-input networks).

    Returns:
        (B, K) float32 probabilities: the mean over views of softmax(logits).
    """
    views = tta_views(images, mode, crop_size, pad=pad, resize=resize)
    was_training = model.training
    model.eval()
    try:
        total = None
        for view in views:  # one view at a time: memory of one batch, whatever the number of views
            probs = model(view).float().softmax(dim=1)
            total = probs if total is None else total + probs
    finally:
        model.train(was_training)
    return total / len(views)

"""Data augmentation: random parameters sampled once, applied alike to the image, boxes, masks and landmarks.

    from cnnkit.augment import build_transform, Sample
    aug = build_transform("flip,crop,rotate,color", image_size=64, seed=0)
    image = aug(image)                                  # float tensor (C, H, W) in [0, 1]
    out = aug(Sample(image, boxes=boxes, landmarks=pts))  # targets move with the image

Each transform splits randomness from the kernel: `sample_params(rng, (H, W)) -> params`, then
`apply(sample, params) -> sample` (deterministic, see `cnnkit.augment.functional`).
"""

from cnnkit.augment import functional
from cnnkit.augment.pca import IMAGENET_PCA, PCAColourStats, fit_pca_colour
from cnnkit.augment.sample import AugmentSample, Sample
from cnnkit.augment.spec import PRESETS, build_transform, list_ops, op_help, parse_spec, register_op
from cnnkit.augment.transforms import (
    Affine,
    CenterCrop,
    ColourShift,
    Compose,
    ElasticWarp,
    HorizontalFlip,
    Identity,
    PCAColour,
    RandomCrop,
    RandomResizedCrop,
    Resize,
    SanitizeBoxes,
    Transform,
    VerticalFlip,
)

__all__ = [
    "IMAGENET_PCA",
    "PRESETS",
    "Affine",
    "AugmentSample",
    "CenterCrop",
    "ColourShift",
    "Compose",
    "ElasticWarp",
    "HorizontalFlip",
    "Identity",
    "PCAColour",
    "PCAColourStats",
    "RandomCrop",
    "RandomResizedCrop",
    "Resize",
    "Sample",
    "SanitizeBoxes",
    "Transform",
    "VerticalFlip",
    "build_transform",
    "fit_pca_colour",
    "functional",
    "list_ops",
    "op_help",
    "parse_spec",
    "register_op",
]

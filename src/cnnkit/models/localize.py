"""Classification-with-localisation and landmark networks: any zoo backbone with the heads of `cnnkit.detect`.

    model = create_model("loc_tiny", num_classes=5)       # (N, 5 + C): p_c, b_x, b_y, b_h, b_w, classes
    model = create_model("landmarks_tiny", num_landmarks=4)  # (N, K, 2) (x, y) as fractions of the image
"""

from __future__ import annotations

from cnnkit.detect.landmarks import LandmarkNet
from cnnkit.detect.localization import LocalizationNet
from cnnkit.models.backbone import with_weights
from cnnkit.models.registry import create_model, register_model


def _named(model, name: str, **kwargs):
    """Record the registry name and arguments (fit's default model-file metadata reads them)."""
    model.cnnkit_name, model.cnnkit_kwargs = name, kwargs
    return model


_TINY = {"widths": (16, 32, 64, 128), "depths": (0, 1, 1, 2)}  # darknet_tiny cut at stride 16, as yolo_tiny


@register_model
def loc_tiny(*, num_classes: int = 5, in_chans: int = 3, image_size: int = 128, weights=None) -> LocalizationNet:
    """darknet_tiny (stride 16) with the localisation head; 128 x 128 inputs."""
    backbone = create_model("darknet_tiny", num_classes=0, in_chans=in_chans, **_TINY)
    size = (in_chans, image_size, image_size)
    model = LocalizationNet(backbone, num_classes=num_classes, input_size=size)
    return with_weights(_named(model, "loc_tiny", num_classes=num_classes, in_chans=in_chans, image_size=image_size),
                        weights)


@register_model
def loc_resnet18(*, num_classes: int = 5, in_chans: int = 3, image_size: int = 128, weights=None) -> LocalizationNet:
    """ResNet-18 with the localisation head on layer3 (stride 16)."""
    backbone = create_model("resnet18", num_classes=0, in_chans=in_chans)
    model = LocalizationNet(backbone, num_classes=num_classes, stage=3, input_size=(in_chans, image_size, image_size))
    return with_weights(_named(model, "loc_resnet18", num_classes=num_classes, in_chans=in_chans,
                               image_size=image_size), weights)


@register_model
def landmarks_tiny(*, num_landmarks: int = 4, num_classes: int | None = None, in_chans: int = 3, image_size: int = 128,
                   weights=None) -> LandmarkNet:
    """darknet_tiny (stride 16) with the landmark head (num_classes is accepted and ignored: landmarks have none)."""
    backbone = create_model("darknet_tiny", num_classes=0, in_chans=in_chans, **_TINY)
    size = (in_chans, image_size, image_size)
    model = LandmarkNet(backbone, num_landmarks=num_landmarks, input_size=size)
    return with_weights(_named(model, "landmarks_tiny", num_landmarks=num_landmarks, in_chans=in_chans,
                               image_size=image_size), weights)


@register_model
def landmarks_resnet18(*, num_landmarks: int = 4, num_classes: int | None = None, in_chans: int = 3,
                       image_size: int = 128, weights=None) -> LandmarkNet:
    """ResNet-18 with the landmark head on layer3 (stride 16)."""
    backbone = create_model("resnet18", num_classes=0, in_chans=in_chans)
    model = LandmarkNet(backbone, num_landmarks=num_landmarks, stage=3, input_size=(in_chans, image_size, image_size))
    return with_weights(_named(model, "landmarks_resnet18", num_landmarks=num_landmarks, in_chans=in_chans,
                               image_size=image_size), weights)

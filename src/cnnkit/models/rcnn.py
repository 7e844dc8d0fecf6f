"""Region-proposal detectors registered in the zoo (`cnnkit.detect.rcnn`): Faster R-CNN on a small backbone for
the CPU, and torchvision's `fasterrcnn_resnet50_fpn` with its state-dict key names.

    model = create_model("faster_rcnn_darknet_tiny", num_classes=5)      # cnnkit train --data scenes default
    model = create_model("fast_rcnn_darknet_tiny", num_classes=5)        # selective search + RoI align
    model = create_model("rcnn_darknet_tiny", num_classes=5)             # selective search + warped crops
    model = create_model("fasterrcnn_resnet50_fpn", weights="fasterrcnn_resnet50_fpn_coco.pth")  # torchvision's
"""

from __future__ import annotations

import cnnkit.detect.rcnn.task  # noqa: F401  (registers the "rcnn" task with the models that use it)
from cnnkit.detect.rcnn.backbones import BackboneWithFPN, FrozenBatchNorm2d, StageFeatures
from cnnkit.detect.rcnn.fast_rcnn import ProposalDetector, fast_rcnn
from cnnkit.detect.rcnn.faster_rcnn import FasterRCNN
from cnnkit.detect.rcnn.rcnn import rcnn
from cnnkit.models.backbone import with_weights
from cnnkit.models.registry import create_model, register_model

# the small detectors' settings for 128-pixel scenes on a CPU: one stride-8 map, anchors 16-64 pixels, fewer
# proposals and sampled RoIs than torchvision's 2000/1000 and 512 (64 RoIs: a third of the step time)
SMALL = {"min_size": None, "size_divisible": 32, "representation_size": 256, "featmap_names": ("0",),
         "rpn_pre_nms_top_n_train": 600, "rpn_post_nms_top_n_train": 300, "rpn_pre_nms_top_n_test": 300,
         "rpn_post_nms_top_n_test": 100, "box_batch_size_per_image": 64, "input_size": (3, 128, 128)}


def _channels(in_chans: int) -> dict:
    """Normalisation of 1- or 3-channel inputs (ImageNet's statistics; grey: their mean)."""
    return {} if in_chans == 3 else {"image_mean": (0.449,) * in_chans, "image_std": (0.226,) * in_chans}


def _small_faster_rcnn(backbone: str, *, num_classes: int, weights=None, in_chans: int = 3, stride: int = 8,
                       anchor_sizes=(16, 32, 64), aspect_ratios=(0.5, 1.0, 2.0), **kwargs) -> FasterRCNN:
    from cnnkit.ops import AnchorGenerator

    body = create_model(backbone, num_classes=0, in_chans=in_chans)
    kw = {**SMALL, **_channels(in_chans), "input_size": (in_chans, 128, 128), **kwargs}
    model = FasterRCNN(StageFeatures(body, stride), num_classes,
                       rpn_anchor_generator=AnchorGenerator((tuple(anchor_sizes),), (tuple(aspect_ratios),)), **kw)
    return with_weights(model, weights)


@register_model
def faster_rcnn_darknet_tiny(*, num_classes: int = 5, weights=None, in_chans: int = 3, **kwargs) -> FasterRCNN:
    """Faster R-CNN on darknet_tiny's stride-8 map (64 channels), 9 anchors per cell; the CPU default."""
    return _small_faster_rcnn("darknet_tiny", num_classes=num_classes, weights=weights, in_chans=in_chans, **kwargs)


@register_model
def faster_rcnn_resnet18(*, num_classes: int = 5, weights=None, in_chans: int = 3, **kwargs) -> FasterRCNN:
    """Faster R-CNN on ResNet-18's stride-8 map (layer2, 128 channels)."""
    return _small_faster_rcnn("resnet18", num_classes=num_classes, weights=weights, in_chans=in_chans, **kwargs)


@register_model
def fasterrcnn_resnet50_fpn(*, num_classes: int = 90, weights=None, in_chans: int = 3, **kwargs) -> FasterRCNN:
    """torchvision's Faster R-CNN ResNet-50-FPN (v1): frozen BatchNorm, FPN of 256 channels on layer1..4 plus a
    max-pooled level, anchors 32..512, 1024-wide head. `num_classes` excludes the background (torchvision's 91 =
    90 + background); state-dict keys are torchvision's, so its checkpoints load with `load_weights`."""
    body = create_model("resnet50", num_classes=0, in_chans=in_chans, norm_layer=FrozenBatchNorm2d)
    model = FasterRCNN(BackboneWithFPN(body, 256), num_classes, **{**_channels(in_chans), **kwargs})
    return with_weights(model, weights)


def _proposal_kwargs(in_chans: int, kwargs: dict) -> dict:
    return {**_channels(in_chans), "input_size": (in_chans, 128, 128), **kwargs}


@register_model
def fast_rcnn_darknet_tiny(*, num_classes: int = 5, weights=None, in_chans: int = 3, **kwargs) -> ProposalDetector:
    """Fast R-CNN: selective search proposals RoI-aligned (7 x 7) from darknet_tiny's stride-8 map, 256-wide head."""
    body = create_model("darknet_tiny", num_classes=0, in_chans=in_chans)
    return with_weights(fast_rcnn(StageFeatures(body, 8), num_classes, **_proposal_kwargs(in_chans, kwargs)), weights)


@register_model
def rcnn_darknet_tiny(*, num_classes: int = 5, weights=None, in_chans: int = 3, **kwargs) -> ProposalDetector:
    """R-CNN: selective search proposals warped to 32 x 32, each classified by a whole darknet_tiny."""
    body = create_model("darknet_tiny", num_classes=0, in_chans=in_chans)
    return with_weights(rcnn(body, num_classes, **_proposal_kwargs(in_chans, kwargs)), weights)

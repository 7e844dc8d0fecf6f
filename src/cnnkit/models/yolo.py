"""YOLO v2-style detectors: any zoo backbone's `forward_stages` with a YOLO head (`cnnkit.detect.yolo`).

    model = create_model("yolo_tiny", num_classes=5, anchors=[[12, 14], [25, 22], [38, 40]])
    raw = model(images)                       # (N, S, S, B, 5 + C), S = input side / model.stride
    detections = model.detect(images)         # per image {"boxes", "scores", "labels"} after NMS

The head reads the backbone's deepest stage used (stride s) and, through YOLOv2's passthrough, the stage at s/2.
Anchors are (width, height) in input pixels, a buffer saved with the weights; `cnnkit train` replaces the
defaults by k-means anchors of the training boxes.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from cnnkit.detect.yolo.decode import decode_predictions, postprocess
from cnnkit.detect.yolo.head import YoloHead
from cnnkit.errors import InputError
from cnnkit.models.backbone import Backbone, with_weights
from cnnkit.models.registry import create_model, register_model

# YOLOv2's COCO anchors (in cells of a 13 x 13 grid) as fractions of the image side: a neutral default that
# k-means on the user's boxes replaces
DEFAULT_ANCHORS = [[0.0441, 0.0521], [0.1442, 0.1587], [0.2568, 0.4211], [0.6064, 0.2714], [0.7516, 0.7053]]


class YOLO(nn.Module):
    """A backbone and a YOLO head; `forward` returns the raw grid (N, S_h, S_w, B, 5 + C).

    Args:
        backbone: a zoo Backbone (its classifier is not used).
        num_classes: object classes C.
        anchors: (B, 2) anchor (width, height) in pixels of the input.
        stage: index into `backbone.forward_stages` of the feature map the head reads (default: the last).
        passthrough: also read the stage before it (when its stride is half), YOLOv2's passthrough layer.
        hidden: channels of the head's convolutions.
        num_convs: head convolutions before the passthrough fusion.
        input_size: (C, H, W) the model is trained at by default.
    """

    task = "detection"

    def __init__(self, backbone: Backbone, *, num_classes: int, anchors, stage: int = -1, passthrough: bool = True,
                 hidden: int = 256, num_convs: int = 2, input_size: tuple[int, int, int] = (3, 256, 256)) -> None:
        super().__init__()
        if num_classes < 1:
            raise InputError(f"a detector needs at least one class, got num_classes={num_classes}")
        pairs = torch.as_tensor(anchors, dtype=torch.float32, device="cpu").reshape(-1, 2).tolist()
        if not pairs or min(min(p) for p in pairs) <= 0:  # checked on the CPU: the model may be built on "meta"
            raise InputError(f"anchors must be positive (width, height) pairs, got {pairs}")
        anchors = torch.tensor(pairs, dtype=torch.float32)
        self.backbone = backbone
        self.num_classes = num_classes
        self.default_input_size = tuple(input_size)
        strides = _stage_strides(backbone, input_size[0])
        self.stage = stage % len(strides)
        self.stride = strides[self.stage]
        fine = self.stage - 1 if passthrough and self.stage > 0 and strides[self.stage - 1] * 2 == self.stride else None
        self.fine_stage = fine
        channels = backbone.stage_channels
        self.register_buffer("anchors", anchors)
        self.head = YoloHead(channels[self.stage], len(anchors), num_classes, hidden=hidden, num_convs=num_convs,
                             passthrough_channels=channels[fine] if fine is not None else 0)

    @property
    def num_anchors(self) -> int:
        return len(self.anchors)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W), H and W multiples of `stride` -> raw (N, H / stride, W / stride, B, 5 + C)."""
        h, w = x.shape[-2:]
        if h % self.stride or w % self.stride:
            up = -(-max(h, w) // self.stride) * self.stride
            raise InputError(f"detector input {h}x{w} is not a multiple of the stride {self.stride}; use a size that "
                             f"is (e.g. --image-size {up}), or pad it (cnnkit.data.letterbox.letterbox(image, None, "
                             f"stride={self.stride}))")
        stages = self.backbone.forward_stages(x)
        return self.head(stages[self.stage], stages[self.fine_stage] if self.fine_stage is not None else None)

    def decode(self, raw: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Raw output -> (boxes (N, A, 4) xyxy pixels, scores (N, A, C)), A = S_h S_w B; no thresholding."""
        return decode_predictions(raw, self.anchors, self.stride)

    def export_module(self) -> YoloDecoded:
        """The module `cnnkit export` writes: this network with the decoding, output (N, A, 4 + C)."""
        return YoloDecoded(self).eval()

    @torch.no_grad()
    def detect(self, x: torch.Tensor, *, score_threshold: float = 0.25, iou_threshold: float = 0.45,
               max_detections: int = 100) -> list[dict[str, torch.Tensor]]:
        """Detections of a batch: per image {"boxes" (k, 4) xyxy pixels, "scores" (k,), "labels" (k,)}."""
        boxes, scores = self.decode(self(x))
        return postprocess(boxes, scores, score_threshold=score_threshold, iou_threshold=iou_threshold,
                           max_detections=max_detections, image_size=tuple(x.shape[-2:]))


class YoloDecoded(nn.Module):
    """A detector whose output is already decoded: one Tensor (N, A, 4 + C), per anchor box (x1, y1, x2, y2) in
    input pixels then the C class scores p_c x P(class), A = S_h S_w B.

    What `cnnkit export` writes (one output, like ultralytics' exports): the network and the box arithmetic in
    one graph. Thresholding and NMS stay outside (their output size depends on the data):
    `cnnkit.detect.yolo.postprocess(out[..., :4], out[..., 4:])`, or any runtime's NMS on the same numbers.
    """

    task = "detection"

    def __init__(self, model: YOLO) -> None:
        super().__init__()
        self.model = model
        self.default_input_size = model.default_input_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        boxes, scores = self.model.decode(self.model(x))
        return torch.cat([boxes, scores], -1)  # (N, A, 4 + C)


def _stage_strides(backbone: Backbone, in_chans: int) -> list[int]:
    """Stride of every stage of `backbone`, measured on a 64 x 64 input."""
    was_training = backbone.training
    backbone.eval()
    with torch.no_grad():
        side = 64
        stages = backbone.forward_stages(torch.zeros(1, in_chans, side, side))
    backbone.train(was_training)
    return [side // int(s.shape[-1]) for s in stages]


def _anchors(anchors, num_anchors: int | None, side: int) -> list[list[float]]:
    if anchors is not None:
        return [[float(a), float(b)] for a, b in anchors]
    base = DEFAULT_ANCHORS
    if num_anchors is not None:
        if not 1 <= num_anchors <= len(base):
            raise InputError(f"num_anchors must be 1..{len(base)} without explicit anchors, got {num_anchors}")
        base = base[:: max(1, len(base) // num_anchors)][:num_anchors]
    return [[round(w * side, 2), round(h * side, 2)] for w, h in base]


def _yolo(name: str, backbone_name: str, *, num_classes: int, in_chans: int, anchors, num_anchors: int | None,
          image_size: int, weights, backbone_kwargs: dict | None = None, **kwargs) -> YOLO:
    backbone = create_model(backbone_name, num_classes=0, in_chans=in_chans, **(backbone_kwargs or {}))
    anchors = _anchors(anchors, num_anchors, image_size)
    model = YOLO(backbone, num_classes=num_classes, anchors=anchors, input_size=(in_chans, image_size, image_size),
                 **kwargs)
    # how to rebuild it (fit's default model-file metadata reads these): the anchors are part of the architecture
    model.cnnkit_name = name
    model.cnnkit_kwargs = {"num_classes": num_classes, "in_chans": in_chans, "anchors": anchors,
                           "image_size": image_size}
    return with_weights(model, weights)


@register_model
def yolo_tiny(*, num_classes: int = 20, in_chans: int = 3, anchors=None, num_anchors: int | None = None,
              image_size: int = 128, weights=None) -> YOLO:
    """The CPU default: darknet_tiny cut at stride 16 (4 stages, 16-32-64-128 channels) with a 128-channel head and
    the passthrough of stride 8; 128 x 128 inputs give an 8 x 8 grid."""
    return _yolo("yolo_tiny", "darknet_tiny",
                 num_classes=num_classes, in_chans=in_chans, anchors=anchors, num_anchors=num_anchors,
                 image_size=image_size, weights=weights, hidden=128, num_convs=1,
                 backbone_kwargs={"widths": (16, 32, 64, 128), "depths": (0, 1, 1, 2)})


@register_model
def yolo_darknet(*, num_classes: int = 20, in_chans: int = 3, anchors=None, num_anchors: int | None = None,
                 image_size: int = 256, weights=None) -> YOLO:
    """darknet_tiny's 5 stages (stride 32) with a 256-channel head and the stride-16 passthrough, as YOLOv2 on
    Darknet-19 but about 20x lighter."""
    return _yolo("yolo_darknet", "darknet_tiny",
                 num_classes=num_classes, in_chans=in_chans, anchors=anchors, num_anchors=num_anchors,
                 image_size=image_size, weights=weights)


@register_model
def yolo_resnet18(*, num_classes: int = 20, in_chans: int = 3, anchors=None, num_anchors: int | None = None,
                  image_size: int = 256, weights=None) -> YOLO:
    """ResNet-18's stages (stride 32, passthrough from layer3) with a YOLO head."""
    return _yolo("yolo_resnet18", "resnet18",
                 num_classes=num_classes, in_chans=in_chans, anchors=anchors, num_anchors=num_anchors,
                 image_size=image_size, weights=weights)


@register_model
def yolo_mobilenet_v2(*, num_classes: int = 20, in_chans: int = 3, anchors=None, num_anchors: int | None = None,
                      image_size: int = 256, weights=None) -> YOLO:
    """MobileNet v2's stages (stride 32, passthrough from stride 16) with a YOLO head."""
    return _yolo("yolo_mobilenet_v2", "mobilenet_v2",
                 num_classes=num_classes, in_chans=in_chans, anchors=anchors, num_anchors=num_anchors,
                 image_size=image_size, weights=weights)

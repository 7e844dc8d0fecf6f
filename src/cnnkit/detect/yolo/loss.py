"""The YOLOv2 loss (Redmon & Farhadi 2017, darknet's region layer), summed over anchors, averaged over images.

For an anchor responsible for an object (see `build_targets`):
- coordinates: coord_scale x (2 - w h / (W H)) x [(sigmoid(t_x) - x_off)^2 + (sigmoid(t_y) - y_off)^2
  + (t_h - log(h / a_h))^2 + (t_w - log(w / a_w))^2];
- objectness: object_scale x (p_c - IoU(predicted box, true box))^2 ("rescore": p_c learns how good its box
  is, which ranks the detections for mAP);
- class: class_scale x cross-entropy of the softmax over classes (darknet squares the softmax errors; the
  cross-entropy is the curriculum's and gives the same optimum with stronger gradients).

For every other anchor: noobject_scale x p_c^2, except when its predicted box already overlaps a true box by
more than `ignore_threshold` (it is a good box that merely is not the responsible one: no push either way).

`objectness="bce"` replaces the two squared errors on p_c by binary cross-entropy on the same targets (later
YOLOs do): the squared error of a sigmoid has a vanishing gradient once p_c saturates, the cross-entropy not.
Darknet's "prior" term (first 12,800 images: boxes pulled to the anchors) is left out: the head starts at the
anchors already (zero offsets), so it has nothing to do.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from cnnkit.detect.yolo.decode import decode_raw
from cnnkit.detect.yolo.targets import YoloTargets, build_targets


@dataclass
class YoloLoss:
    """The YOLOv2 loss with its darknet weights (yolo-voc.cfg: object 5, noobject 1, class 1, coord 1).

    Args:
        object_scale: weight of the objectness error of responsible anchors.
        noobject_scale: weight of the objectness error of the other anchors.
        class_scale: weight of the class loss.
        coord_scale: weight of the box error.
        ignore_threshold: a non-responsible prediction overlapping a true box by more than this is not
            pushed towards p_c = 0.
        objectness: "mse" (YOLOv2) or "bce".
        rescore: objectness target of a responsible anchor is the IoU of its box with the truth (True) or 1.
    """

    object_scale: float = 5.0
    noobject_scale: float = 1.0
    class_scale: float = 1.0
    coord_scale: float = 1.0
    ignore_threshold: float = 0.6
    objectness: str = "mse"
    rescore: bool = True

    def __call__(self, raw: Tensor, targets: list[dict] | YoloTargets, anchors: Tensor, stride: int,
                 image_size: tuple[int, int] | None = None) -> tuple[Tensor, dict[str, float]]:
        """Loss of a batch.

        Args:
            raw: Tensor (N, S_h, S_w, B, 5 + C), the network's output.
            targets: per image a dict with "boxes" (n, 4) xyxy pixels and "labels" (n,), or built targets.
            anchors: Tensor (B, 2) (width, height) pixels.
            stride: pixels per cell.
            image_size: (H, W) of the input (default: grid x stride).

        Returns:
            (scalar loss averaged over images, {"box": ..., "obj": ..., "noobj": ..., "cls": ...} per image).
        """
        n, sh, sw, _, _ = raw.shape
        raw = raw.float()
        anchors = anchors.to(raw.device, torch.float32)
        if not isinstance(targets, YoloTargets):
            targets = build_targets(targets, anchors, stride, (sh, sw), image_size)
        obj = targets.obj
        boxes, pc, _ = decode_raw(raw, anchors, stride)
        # which predictions overlap some true box well enough to be left alone (no gradient through this)
        ignore = torch.zeros_like(obj)
        with torch.no_grad():
            from cnnkit.ops import box_iou  # lazy: cnnkit.ops is another room's module

            for i, gt in enumerate(targets.gt_boxes):
                if len(gt):
                    best = box_iou(boxes[i].reshape(-1, 4), gt).amax(1)  # (S_h * S_w * B,)
                    ignore[i] = (best > self.ignore_threshold).view(ignore[i].shape)
        noobj = ~obj & ~ignore

        pred_obj = raw[obj]  # (M, 5 + C) rows of the responsible anchors
        if self.rescore and len(pred_obj):
            with torch.no_grad():
                iou = _paired_iou(boxes[obj], targets.boxes[obj])
        else:
            iou = torch.ones(len(pred_obj), device=raw.device)
        if self.objectness == "bce":
            logit = raw[..., 0]
            l_obj = F.binary_cross_entropy_with_logits(logit[obj], iou, reduction="sum")
            l_noobj = F.binary_cross_entropy_with_logits(logit[noobj], torch.zeros_like(logit[noobj]), reduction="sum")
        else:
            l_obj = ((pc[obj] - iou) ** 2).sum()
            l_noobj = (pc[noobj] ** 2).sum()
        t = targets.offsets[obj]
        xy_err = ((torch.sigmoid(pred_obj[:, 1:3]) - t[:, :2]) ** 2).sum(1)
        box_err = xy_err + ((pred_obj[:, 3:5] - t[:, 2:]) ** 2).sum(1)
        l_box = (targets.coord_scale[obj] * box_err).sum()
        l_cls = F.cross_entropy(pred_obj[:, 5:], targets.labels[obj], reduction="sum")
        parts = {"box": self.coord_scale * l_box, "obj": self.object_scale * l_obj,
                 "noobj": self.noobject_scale * l_noobj, "cls": self.class_scale * l_cls}
        total = sum(parts.values()) / n
        return total, {k: float(v.detach()) / n for k, v in parts.items()}


def _paired_iou(a: Tensor, b: Tensor) -> Tensor:
    """IoU of a[i] with b[i] (the diagonal of cnnkit.ops.box_iou, without the M x M matrix)."""
    from cnnkit.ops import box_iou

    if len(a) <= 64:
        return box_iou(a, b).diagonal()
    return torch.cat([box_iou(a[i:i + 64], b[i:i + 64]).diagonal() for i in range(0, len(a), 64)])

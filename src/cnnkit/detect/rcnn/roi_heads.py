"""The Fast R-CNN head shared by Fast and Faster R-CNN: RoI align of every proposal from the feature maps, two
fully connected layers, a (C + 1)-way classifier (0 = background) and class-specific box deltas.

Names and defaults follow torchvision's `RoIHeads`, `TwoMLPHead` and `FastRCNNPredictor`
(`roi_heads.box_head.fc6/fc7`, `roi_heads.box_predictor.cls_score/bbox_pred`).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from cnnkit.detect.rcnn.matcher import match, sample
from cnnkit.ops import BoxCoder, batched_nms, box_iou, clip_boxes_to_image, remove_small_boxes

# why the region detectors cannot be exported: `cnnkit export` traces one fixed graph, and the proposals, their
# sampling and the per-class NMS change with every image
NOT_EXPORTABLE = ("its region proposals and their NMS depend on the image (a tracer records one fixed graph); use the "
                  "model file with `cnnkit predict`, or export a YOLO model")


class TwoMLPHead(nn.Module):
    """Flatten the pooled RoI features, then fc6 + ReLU, fc7 + ReLU."""

    def __init__(self, in_channels: int, representation_size: int) -> None:
        super().__init__()
        self.fc6 = nn.Linear(in_channels, representation_size)
        self.fc7 = nn.Linear(representation_size, representation_size)

    def forward(self, x: Tensor) -> Tensor:
        """(K, C, p, p) -> (K, representation_size)."""
        return F.relu(self.fc7(F.relu(self.fc6(x.flatten(1)))))


class FastRCNNPredictor(nn.Module):
    """Class logits (K, num_classes) and per-class deltas (K, 4 num_classes); num_classes counts the background."""

    def __init__(self, in_channels: int, num_classes: int) -> None:
        super().__init__()
        self.cls_score = nn.Linear(in_channels, num_classes)
        self.bbox_pred = nn.Linear(in_channels, num_classes * 4)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self.cls_score(x), self.bbox_pred(x)


class RoIHeads(nn.Module):
    """Proposal sampling (IoU >= 0.5 foreground, else background; 512 per image, a quarter positive), the head,
    its loss (cross-entropy + smooth L1 of the true class's deltas, beta 1/9), and the post-processing (softmax,
    per-class decoding, clipping, score >= 0.05, per-class NMS at 0.5, 100 per image). Defaults are torchvision's.

    Args:
        box_roi_pool: callable (features dict, boxes list, image sizes) -> (K, C, p, p), e.g. MultiScaleRoIAlign.
        box_head: the module giving one vector per RoI.
        box_predictor: FastRCNNPredictor.
    """

    def __init__(self, box_roi_pool: nn.Module, box_head: nn.Module, box_predictor: nn.Module, *,
                 fg_iou_thresh: float = 0.5, bg_iou_thresh: float = 0.5, batch_size_per_image: int = 512,
                 positive_fraction: float = 0.25, bbox_reg_weights=(10.0, 10.0, 5.0, 5.0), score_thresh: float = 0.05,
                 nms_thresh: float = 0.5, detections_per_img: int = 100) -> None:
        super().__init__()
        self.box_roi_pool, self.box_head, self.box_predictor = box_roi_pool, box_head, box_predictor
        self.box_coder = BoxCoder(weights=tuple(bbox_reg_weights))
        self.fg_iou_thresh, self.bg_iou_thresh = fg_iou_thresh, bg_iou_thresh
        self.batch_size_per_image, self.positive_fraction = batch_size_per_image, positive_fraction
        self.score_thresh, self.nms_thresh, self.detections_per_img = score_thresh, nms_thresh, detections_per_img

    def select_training_samples(self, proposals: list[Tensor], targets: list[dict]):
        """Add the ground truth to the proposals, match and sample: (proposals, class labels 0..C, regression
        targets) per image. Labels in `targets` are 1-based here (0 is the background)."""
        out_p, out_l, out_r = [], [], []
        for props, t in zip(proposals, targets, strict=True):
            gt = t["boxes"].to(props)
            gl = t["labels"].to(props.device)
            props = torch.cat([props, gt])
            m = match(box_iou(gt, props), self.fg_iou_thresh, self.bg_iou_thresh, allow_low_quality=False)
            labels = gl[m.clamp(min=0)] if len(gt) else torch.zeros(len(props), dtype=torch.int64,
                                                                      device=props.device)
            labels = labels.clone()
            labels[m == -1] = 0
            labels[m == -2] = -1
            pos, neg = sample(labels, self.batch_size_per_image, self.positive_fraction)
            idx = torch.cat([pos, neg])
            props, labels = props[idx], labels[idx]
            ref = gt[m[idx].clamp(min=0)] if len(gt) else props
            out_p.append(props)
            out_l.append(labels)
            out_r.append(self.box_coder.encode_single(ref, props))
        return out_p, out_l, out_r

    def head(self, features: dict[str, Tensor], proposals: list[Tensor], image_sizes) -> tuple[Tensor, Tensor]:
        """(class logits (K, C + 1), deltas (K, 4 (C + 1))) of all proposals of the batch."""
        pooled = self.box_roi_pool(features, proposals, image_sizes)
        return self.box_predictor(self.box_head(pooled))

    def loss(self, features, proposals: list[Tensor], targets: list[dict], image_sizes) -> tuple[Tensor, Tensor]:
        """(classification loss, box loss) over the sampled proposals of the batch."""
        props, labels, regs = self.select_training_samples(proposals, targets)
        logits, deltas = self.head(features, props, image_sizes)
        labels, regs = torch.cat(labels), torch.cat(regs)
        cls = F.cross_entropy(logits, labels)
        pos = torch.nonzero(labels > 0).flatten()
        deltas = deltas.reshape(len(deltas), -1, 4)
        box = F.smooth_l1_loss(deltas[pos, labels[pos]], regs[pos], beta=1 / 9, reduction="sum")
        box = box / max(labels.numel(), 1)
        return cls, box

    def postprocess(self, logits: Tensor, deltas: Tensor, proposals: list[Tensor], image_sizes, *,
                    score_thresh: float | None = None, nms_thresh: float | None = None,
                    detections_per_img: int | None = None) -> list[dict[str, Tensor]]:
        """Per image {"boxes" (D, 4), "labels" (D,) 1-based, "scores" (D,)}."""
        score_thresh = self.score_thresh if score_thresh is None else score_thresh
        nms_thresh = self.nms_thresh if nms_thresh is None else nms_thresh
        top = self.detections_per_img if detections_per_img is None else detections_per_img
        counts = [len(p) for p in proposals]
        num_classes = logits.shape[-1]
        boxes_all = self.box_coder.decode(deltas, proposals) if sum(counts) else deltas.new_zeros(0, num_classes, 4)
        scores_all = F.softmax(logits, -1)
        out = []
        for boxes, scores, size in zip(boxes_all.split(counts), scores_all.split(counts), image_sizes, strict=True):
            boxes = clip_boxes_to_image(boxes.reshape(-1, 4), size).reshape(-1, num_classes, 4)[:, 1:]
            labels = torch.arange(1, num_classes, device=boxes.device).expand(len(boxes), -1)
            boxes, scores, labels = boxes.reshape(-1, 4), scores[:, 1:].reshape(-1), labels.reshape(-1)
            keep = torch.nonzero(scores > score_thresh).flatten()
            boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
            keep = remove_small_boxes(boxes, 1e-2)
            boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
            keep = batched_nms(boxes, scores, labels, nms_thresh)[:top]
            out.append({"boxes": boxes[keep], "labels": labels[keep], "scores": scores[keep]})
        return out

"""The region proposal network (Faster R-CNN): anchors at several scales and aspect ratios on every feature map,
an objectness logit and four box deltas per anchor, decoding, its own NMS, and its loss.

Names and defaults follow torchvision's `RegionProposalNetwork` / `RPNHead`, so their state dicts match
(`rpn.head.conv.0.0.weight`, `rpn.head.cls_logits.*`, `rpn.head.bbox_pred.*`).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from cnnkit.detect.rcnn.matcher import match, sample
from cnnkit.ops import AnchorGenerator, BoxCoder, batched_nms, box_iou, clip_boxes_to_image, remove_small_boxes


class RPNHead(nn.Module):
    """A shared 3x3 convolution + ReLU, then 1x1 convolutions to A objectness logits and 4A deltas per location.

    Args:
        in_channels: channels of every feature map.
        num_anchors: anchors per location A.
    """

    def __init__(self, in_channels: int, num_anchors: int) -> None:
        super().__init__()
        # Sequential(Sequential(conv, relu)): torchvision's Conv2dNormActivation layout -> key "conv.0.0.weight"
        self.conv = nn.Sequential(nn.Sequential(nn.Conv2d(in_channels, in_channels, 3, padding=1), nn.ReLU(True)))
        self.cls_logits = nn.Conv2d(in_channels, num_anchors, 1)
        self.bbox_pred = nn.Conv2d(in_channels, num_anchors * 4, 1)
        for layer in self.modules():
            if isinstance(layer, nn.Conv2d):
                nn.init.normal_(layer.weight, std=0.01)
                nn.init.constant_(layer.bias, 0)

    def forward(self, features: list[Tensor]) -> tuple[list[Tensor], list[Tensor]]:
        """Feature maps [(B, C, h, w)] -> objectness [(B, A, h, w)], deltas [(B, 4A, h, w)]."""
        logits, deltas = [], []
        for f in features:
            t = self.conv(f)
            logits.append(self.cls_logits(t))
            deltas.append(self.bbox_pred(t))
        return logits, deltas


def flatten_levels(logits: list[Tensor], deltas: list[Tensor]) -> tuple[Tensor, Tensor, list[int]]:
    """Per-level maps -> (B, sum hwA) logits and (B, sum hwA, 4) deltas in the anchors' order (y, x, anchor)."""
    flat_l, flat_d, counts = [], [], []
    for lg, dt in zip(logits, deltas, strict=True):
        b, a, h, w = lg.shape
        flat_l.append(lg.permute(0, 2, 3, 1).reshape(b, -1))                               # (B, h w A)
        flat_d.append(dt.view(b, a, 4, h, w).permute(0, 3, 4, 1, 2).reshape(b, -1, 4))    # (B, h w A, 4)
        counts.append(h * w * a)
    return torch.cat(flat_l, 1), torch.cat(flat_d, 1), counts


class RegionProposalNetwork(nn.Module):
    """Anchors, head, proposal selection (top-k per level, decode, clip, drop tiny boxes, NMS per level, top-k)
    and the RPN loss (anchors matched at IoU >= 0.7 / < 0.3 with low-quality matches, 256 sampled per image, half
    positive; binary cross-entropy + smooth L1 with beta 1/9). Defaults are torchvision's.
    """

    def __init__(self, anchor_generator: AnchorGenerator, head: RPNHead, *, fg_iou_thresh: float = 0.7,
                 bg_iou_thresh: float = 0.3, batch_size_per_image: int = 256, positive_fraction: float = 0.5,
                 pre_nms_top_n: dict[str, int] | None = None, post_nms_top_n: dict[str, int] | None = None,
                 nms_thresh: float = 0.7, score_thresh: float = 0.0) -> None:
        super().__init__()
        self.anchor_generator = anchor_generator
        self.head = head
        self.box_coder = BoxCoder(weights=(1.0, 1.0, 1.0, 1.0))
        self.fg_iou_thresh, self.bg_iou_thresh = fg_iou_thresh, bg_iou_thresh
        self.batch_size_per_image, self.positive_fraction = batch_size_per_image, positive_fraction
        self._pre = pre_nms_top_n or {"training": 2000, "testing": 1000}
        self._post = post_nms_top_n or {"training": 2000, "testing": 1000}
        self.nms_thresh, self.score_thresh = nms_thresh, score_thresh
        self.min_size = 1e-3

    def pre_nms_top_n(self) -> int:
        return self._pre["training" if self.training else "testing"]

    def post_nms_top_n(self) -> int:
        return self._post["training" if self.training else "testing"]

    def run_head(self, images: Tensor, features: list[Tensor]) -> dict[str, object]:
        """Raw outputs: {"logits" (B, N), "deltas" (B, N, 4), "anchors" [N, 4] per image, "counts" per level}."""
        logits, deltas = self.head(features)
        anchors = self.anchor_generator(images, features)
        flat_l, flat_d, counts = flatten_levels(logits, deltas)
        return {"logits": flat_l, "deltas": flat_d, "anchors": anchors, "counts": counts}

    def proposals(self, raw: dict, image_sizes: list[tuple[int, int]]) -> list[Tensor]:
        """Proposal boxes per image, Tensor[P, 4] xyxy, best objectness first (no gradient)."""
        logits, deltas = raw["logits"].detach(), raw["deltas"].detach()
        out = []
        for i, size in enumerate(image_sizes):
            boxes = self.box_coder.decode_single(deltas[i], raw["anchors"][i])        # (N, 4)
            levels, kept = [], []
            start = 0
            for lvl, n in enumerate(raw["counts"]):
                s = logits[i, start:start + n]
                top = s.topk(min(self.pre_nms_top_n(), n)).indices + start
                kept.append(top)
                levels.append(torch.full_like(top, lvl))
                start += n
            idx = torch.cat(kept)
            b = clip_boxes_to_image(boxes[idx], size)
            s = torch.sigmoid(logits[i, idx])
            lv = torch.cat(levels)
            keep = remove_small_boxes(b, self.min_size)
            keep = keep[s[keep] >= self.score_thresh]
            b, s, lv = b[keep], s[keep], lv[keep]
            keep = batched_nms(b, s, lv, self.nms_thresh)[: self.post_nms_top_n()]
            out.append(b[keep])
        return out

    def loss(self, raw: dict, targets: list[dict]) -> tuple[Tensor, Tensor]:
        """(objectness loss, box loss) of a batch, each a scalar."""
        labels, regs = [], []
        for anchors, t in zip(raw["anchors"], targets, strict=True):
            gt = t["boxes"].to(anchors)
            m = match(box_iou(gt, anchors), self.fg_iou_thresh, self.bg_iou_thresh, allow_low_quality=True)
            lab = (m >= 0).to(torch.float32)
            lab[m == -2] = -1.0
            labels.append(lab)
            regs.append(self.box_coder.encode_single(gt[m.clamp(min=0)], anchors) if len(gt) else
                        torch.zeros_like(anchors))
        pos_all, neg_all = [], []
        n = raw["logits"].shape[1]
        for i, lab in enumerate(labels):
            p, q = sample(lab.long(), self.batch_size_per_image, self.positive_fraction)
            pos_all.append(p + i * n)
            neg_all.append(q + i * n)
        pos, neg = torch.cat(pos_all), torch.cat(neg_all)
        chosen = torch.cat([pos, neg])
        logits = raw["logits"].reshape(-1)
        target = torch.cat(labels)
        obj = F.binary_cross_entropy_with_logits(logits[chosen], target[chosen])
        box = F.smooth_l1_loss(raw["deltas"].reshape(-1, 4)[pos], torch.cat(regs)[pos], beta=1 / 9,
                               reduction="sum") / max(chosen.numel(), 1)
        return obj, box


def default_anchor_generator(sizes=((16, 32, 64),), aspect_ratios=((0.5, 1.0, 2.0),)) -> AnchorGenerator:
    """Anchors for one feature map, sized for the 128-pixel scenes (objects of 20-46 pixels)."""
    return AnchorGenerator(sizes=sizes, aspect_ratios=aspect_ratios)

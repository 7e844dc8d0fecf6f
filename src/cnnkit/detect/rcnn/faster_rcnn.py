"""Faster R-CNN (Ren et al. 2015): a backbone, the region proposal network, and the Fast R-CNN head, trained end to
end. Two ways to call it:

- torchvision's: `model(images)` with a list of (3, H, W) float images in [0, 1] returns, in eval mode, a list of
  {"boxes" (D, 4) xyxy in the image's pixels, "labels" (D,) 1-based (0 is the background), "scores" (D,)}; in
  training mode `model(images, targets)` (targets with 1-based "labels") returns the dict of the four losses.
- cnnkit's trainer: `model(batch)` with a Tensor (B, 3, H, W) returns the raw outputs; the "rcnn" task's loss
  calls `model.compute_loss(raw, targets)` and its meter `model.detect_raw(raw)` (0-based labels there, like the
  rest of cnnkit's detection).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from cnnkit.detect.rcnn.roi_heads import NOT_EXPORTABLE, FastRCNNPredictor, RoIHeads, TwoMLPHead
from cnnkit.detect.rcnn.rpn import RegionProposalNetwork, RPNHead
from cnnkit.errors import InputError
from cnnkit.ops import AnchorGenerator, MultiScaleRoIAlign

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class FasterRCNN(nn.Module):
    """Backbone -> RPN -> RoI heads, torchvision's `FasterRCNN` arguments and defaults where they apply.

    Args:
        backbone: module returning an OrderedDict of feature maps, with attribute `out_channels`.
        num_classes: object classes, WITHOUT the background (the head predicts num_classes + 1; torchvision's
            `num_classes=91` is `num_classes=90` here).
        min_size, max_size: torchvision's resizing of list inputs (None: keep the image's size).
        image_mean, image_std: normalisation of the [0, 1] input.
        rpn_anchor_generator: AnchorGenerator (default: sizes (32..512) on 5 FPN levels like torchvision's).
        size_divisible: inputs are padded to a multiple of it.
        representation_size: width of fc6/fc7.
        featmap_names, roi_output_size, sampling_ratio: the MultiScaleRoIAlign of the head.
        input_size: (C, H, W) the model trains at by default (recorded in the model file).
        The rpn_* and box_* keywords are torchvision's, with its defaults.
    """

    task = "rcnn"
    not_exportable = NOT_EXPORTABLE  # cnnkit export refuses it with this reason

    def __init__(self, backbone: nn.Module, num_classes: int, *, min_size: int | None = 800, max_size: int = 1333,
                 image_mean=IMAGENET_MEAN, image_std=IMAGENET_STD, rpn_anchor_generator: AnchorGenerator | None = None,
                 size_divisible: int = 32, representation_size: int = 1024, featmap_names=("0", "1", "2", "3"),
                 roi_output_size: int = 7, sampling_ratio: int = 2,
                 rpn_pre_nms_top_n_train: int = 2000, rpn_pre_nms_top_n_test: int = 1000,
                 rpn_post_nms_top_n_train: int = 2000, rpn_post_nms_top_n_test: int = 1000,
                 rpn_nms_thresh: float = 0.7, rpn_fg_iou_thresh: float = 0.7, rpn_bg_iou_thresh: float = 0.3,
                 rpn_batch_size_per_image: int = 256, rpn_positive_fraction: float = 0.5, rpn_score_thresh: float = 0.0,
                 box_score_thresh: float = 0.05, box_nms_thresh: float = 0.5, box_detections_per_img: int = 100,
                 box_fg_iou_thresh: float = 0.5, box_bg_iou_thresh: float = 0.5, box_batch_size_per_image: int = 512,
                 box_positive_fraction: float = 0.25, bbox_reg_weights=None,
                 input_size: tuple[int, int, int] = (3, 800, 800)) -> None:
        super().__init__()
        if num_classes < 1:
            raise InputError(f"a detector needs at least one class, got num_classes={num_classes}")
        self.num_classes = num_classes
        self.min_size, self.max_size, self.size_divisible = min_size, max_size, size_divisible
        self.register_buffer("image_mean", torch.tensor(image_mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("image_std", torch.tensor(image_std).view(1, -1, 1, 1), persistent=False)
        self.default_input_size = tuple(input_size)
        self.backbone = backbone
        anchors = rpn_anchor_generator or AnchorGenerator(((32,), (64,), (128,), (256,), (512,)),
                                                          ((0.5, 1.0, 2.0),) * 5)
        self.rpn = RegionProposalNetwork(
            anchors, RPNHead(backbone.out_channels, anchors.num_anchors_per_location()[0]),
            fg_iou_thresh=rpn_fg_iou_thresh, bg_iou_thresh=rpn_bg_iou_thresh,
            batch_size_per_image=rpn_batch_size_per_image, positive_fraction=rpn_positive_fraction,
            pre_nms_top_n={"training": rpn_pre_nms_top_n_train, "testing": rpn_pre_nms_top_n_test},
            post_nms_top_n={"training": rpn_post_nms_top_n_train, "testing": rpn_post_nms_top_n_test},
            nms_thresh=rpn_nms_thresh, score_thresh=rpn_score_thresh)
        pool = MultiScaleRoIAlign(list(featmap_names), roi_output_size, sampling_ratio)
        head = TwoMLPHead(backbone.out_channels * roi_output_size ** 2, representation_size)
        self.roi_heads = RoIHeads(pool, head, FastRCNNPredictor(representation_size, num_classes + 1),
                                  fg_iou_thresh=box_fg_iou_thresh, bg_iou_thresh=box_bg_iou_thresh,
                                  batch_size_per_image=box_batch_size_per_image,
                                  positive_fraction=box_positive_fraction,
                                  bbox_reg_weights=bbox_reg_weights or (10.0, 10.0, 5.0, 5.0),
                                  score_thresh=box_score_thresh, nms_thresh=box_nms_thresh,
                                  detections_per_img=box_detections_per_img)

    def get_classifier(self) -> nn.Module:
        """The class-count-dependent layers (cls_score, bbox_pred): `load_weights` skips them when the file was
        trained for another number of classes, as fine-tuning expects."""
        return self.roi_heads.box_predictor

    @staticmethod
    def upgrade_state_dict(state: dict[str, Tensor]) -> dict[str, Tensor]:
        """Key names of checkpoints saved by torchvision < 0.13 (its COCO weights file among them) -> today's:
        `rpn.head.conv.weight` -> `rpn.head.conv.0.0.weight`, `backbone.fpn.inner_blocks.i.weight` ->
        `backbone.fpn.inner_blocks.i.0.weight` (and layer_blocks), as torchvision's own version hooks do."""
        out = {}
        for k, v in state.items():
            parts = k.split(".")
            if k.startswith("rpn.head.conv.") and len(parts) == 4:
                k = f"rpn.head.conv.0.0.{parts[-1]}"
            elif len(parts) == 5 and parts[:2] == ["backbone", "fpn"] and parts[2] in ("inner_blocks", "layer_blocks"):
                k = ".".join([*parts[:4], "0", parts[4]])
            out[k] = v
        return out

    # -- cnnkit's path: a batch Tensor in, raw outputs out ------------------------------------------------------
    def forward_raw(self, x: Tensor) -> dict[str, Any]:
        """(B, 3, H, W) in [0, 1] -> {"features", "rpn" (raw RPN outputs), "image_sizes", "batch"}."""
        if x.ndim != 4 or x.shape[1] != self.image_mean.shape[1]:
            raise InputError(f"Faster R-CNN expects images (B, {self.image_mean.shape[1]}, H, W), got {tuple(x.shape)}")
        h, w = x.shape[-2:]
        sizes = [(int(h), int(w))] * len(x)
        x = self._pad((x - self.image_mean) / self.image_std)
        feats = self.backbone(x)
        return {"features": feats, "rpn": self.rpn.run_head(x, list(feats.values())), "image_sizes": sizes}

    def compute_loss(self, raw: dict[str, Any], targets: list[dict]) -> dict[str, Tensor]:
        """The four losses of torchvision (loss_objectness, loss_rpn_box_reg, loss_classifier, loss_box_reg);
        `targets` labels are 1-based."""
        obj, rpn_box = self.rpn.loss(raw["rpn"], targets)
        proposals = self.rpn.proposals(raw["rpn"], raw["image_sizes"])
        cls, box = self.roi_heads.loss(raw["features"], proposals, targets, raw["image_sizes"])
        return {"loss_classifier": cls, "loss_box_reg": box, "loss_objectness": obj, "loss_rpn_box_reg": rpn_box}

    def detect_raw(self, raw: dict[str, Any], **thresholds: Any) -> list[dict[str, Tensor]]:
        """Detections of raw outputs, labels 1-based; `thresholds`: score_thresh, nms_thresh, detections_per_img."""
        proposals = self.rpn.proposals(raw["rpn"], raw["image_sizes"])
        logits, deltas = self.roi_heads.head(raw["features"], proposals, raw["image_sizes"])
        return self.roi_heads.postprocess(logits, deltas, proposals, raw["image_sizes"], **thresholds)

    # -- torchvision's path: a list of images in ---------------------------------------------------------------
    def forward(self, images, targets: list[dict] | None = None):
        """A Tensor batch: raw outputs (cnnkit's trainer). A list of (3, H, W) images: torchvision's behaviour
        (training: the loss dict, needs `targets`; eval: detections in each image's own pixels)."""
        if isinstance(images, Tensor) and targets is None:
            return self.forward_raw(images)
        images = list(images)
        if self.training and targets is None:
            raise InputError("in training mode Faster R-CNN needs targets (a list of {'boxes', 'labels'})")
        for i, im in enumerate(images):
            if im.ndim != 3:
                raise InputError(f"image {i} should be (C, H, W), got {tuple(im.shape)}")
        originals = [tuple(im.shape[-2:]) for im in images]
        scales = [self._scale(s) for s in originals]
        resized = [F.interpolate(im[None], scale_factor=s, mode="bilinear", recompute_scale_factor=True,
                                 align_corners=False)[0] if s != 1.0 else im
                   for im, s in zip(images, scales, strict=True)]
        sizes = [tuple(im.shape[-2:]) for im in resized]
        batch = resized[0].new_zeros(len(resized), resized[0].shape[0], max(s[0] for s in sizes),
                                     max(s[1] for s in sizes))
        for b, im in zip(batch, resized, strict=True):
            b[:, : im.shape[1], : im.shape[2]].copy_((im - self.image_mean[0]) / self.image_std[0])
        batch = self._pad(batch)
        feats = self.backbone(batch)
        raw = {"features": feats, "rpn": self.rpn.run_head(batch, list(feats.values())), "image_sizes": sizes}
        if targets is not None and self.training:
            scaled = [{**t, "boxes": t["boxes"] * t["boxes"].new_tensor([r[1] / o[1], r[0] / o[0]] * 2)}
                      for t, r, o in zip(targets, sizes, originals, strict=True)]
            return self.compute_loss(raw, scaled)
        dets = self.detect_raw(raw)
        for d, r, o in zip(dets, sizes, originals, strict=True):
            d["boxes"] = d["boxes"] * torch.tensor([o[1] / r[1], o[0] / r[0]] * 2, device=d["boxes"].device)
        return dets

    def _scale(self, size: tuple[int, int]) -> float:
        if self.min_size is None:
            return 1.0
        lo, hi = float(min(size)), float(max(size))
        return min(self.min_size / lo, self.max_size / hi)

    def _pad(self, x: Tensor) -> Tensor:
        d = self.size_divisible
        h, w = x.shape[-2:]
        ph, pw = math.ceil(h / d) * d - h, math.ceil(w / d) * d - w
        return F.pad(x, (0, pw, 0, ph)) if ph or pw else x

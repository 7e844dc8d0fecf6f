"""Detectors over external region proposals (selective search): Fast R-CNN and, with other parts, R-CNN.

`ProposalDetector` holds a feature extractor, a proposer and the RoI heads (`roi_heads.RoIHeads`):
- Fast R-CNN (Girshick 2015): ONE backbone pass per image; every proposal's features are RoI-aligned from the
  shared map and go through shared fully connected heads (`fast_rcnn(...)`).
- R-CNN (Girshick et al. 2014, `cnnkit.detect.rcnn.rcnn`): the features are the image itself; every proposal is
  warped to a fixed size and runs through the whole backbone on its own.
Both keep the raw-output interface of Faster R-CNN (`forward_raw`, `compute_loss`, `detect_raw`), so the "rcnn"
task trains, evaluates and predicts them alike.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable
from functools import partial
from typing import Any

import torch
import torch.nn as nn
from torch import Tensor

from cnnkit.detect.rcnn.faster_rcnn import IMAGENET_MEAN, IMAGENET_STD
from cnnkit.detect.rcnn.proposals import FAST, selective_search
from cnnkit.detect.rcnn.roi_heads import NOT_EXPORTABLE, FastRCNNPredictor, RoIHeads, TwoMLPHead
from cnnkit.errors import InputError
from cnnkit.ops import MultiScaleRoIAlign, clip_boxes_to_image, remove_small_boxes

CACHE_SIZE = 4096  # proposals kept per model, keyed by the image's bytes (training revisits the same scenes)


def default_proposer(max_proposals: int = 200) -> Callable[[Tensor], Tensor]:
    """Selective search ("fast" mode, 8 strategies), the first `max_proposals` boxes (recall 1.0 at 100 on the
    scenes: README)."""
    return partial(_ss, max_proposals=max_proposals)


def _ss(image: Tensor, max_proposals: int) -> Tensor:
    u8 = (image.detach().cpu().clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    return selective_search(u8, strategies=FAST, max_proposals=max_proposals)


class ProposalDetector(nn.Module):
    """Features + external proposals + RoI heads.

    Args:
        features: module (B, 3, H, W) normalised -> OrderedDict of feature maps.
        roi_heads: RoIHeads whose predictor has num_classes + 1 outputs.
        num_classes: object classes (without the background).
        proposer: image (3, H, W) in [0, 1] -> Tensor[P, 4] xyxy proposals, best first.
        input_size: (C, H, W) the model trains at by default.
    """

    task = "rcnn"
    not_exportable = NOT_EXPORTABLE  # cnnkit export refuses it with this reason

    def __init__(self, features: nn.Module, roi_heads: RoIHeads, num_classes: int, *,
                 proposer: Callable[[Tensor], Tensor] | None = None, image_mean=IMAGENET_MEAN,
                 image_std=IMAGENET_STD, input_size: tuple[int, int, int] = (3, 128, 128)) -> None:
        super().__init__()
        if num_classes < 1:
            raise InputError(f"a detector needs at least one class, got num_classes={num_classes}")
        self.features, self.roi_heads, self.num_classes = features, roi_heads, num_classes
        self.proposer = proposer or default_proposer()
        self.register_buffer("image_mean", torch.tensor(image_mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("image_std", torch.tensor(image_std).view(1, -1, 1, 1), persistent=False)
        self.default_input_size = tuple(input_size)
        self._cache: OrderedDict[str, Tensor] = OrderedDict()

    def get_classifier(self) -> nn.Module:
        """The class-count-dependent layers, skipped by `load_weights` for a file of another class count."""
        return self.roi_heads.box_predictor

    @staticmethod
    def cache_key(image: Tensor) -> str:
        """The key of an image's proposals in the cache (a hash of its values)."""
        return hashlib.sha1(image.detach().cpu().numpy().tobytes()).hexdigest()

    def propose(self, image: Tensor) -> Tensor:
        """Proposals of one image (3, H, W) in [0, 1], clipped to it, without empty boxes (cached)."""
        key = self.cache_key(image)
        if key not in self._cache:
            boxes = torch.as_tensor(self.proposer(image), dtype=torch.float32).reshape(-1, 4)
            boxes = clip_boxes_to_image(boxes, tuple(image.shape[-2:]))
            self._cache[key] = boxes[remove_small_boxes(boxes, 1.0)]  # zero-area or outside: dropped
            while len(self._cache) > CACHE_SIZE:
                self._cache.popitem(last=False)
        return self._cache[key].to(image.device)

    def forward_raw(self, x: Tensor, proposals: list[Tensor] | None = None) -> dict[str, Any]:
        """(B, 3, H, W) in [0, 1] -> {"features", "proposals", "image_sizes"}; `proposals` replace the proposer."""
        if x.ndim != 4:
            raise InputError(f"expected images (B, C, H, W), got {tuple(x.shape)}")
        if proposals is None:
            proposals = [self.propose(im) for im in x]
        else:
            proposals = [clip_boxes_to_image(p.float().reshape(-1, 4), tuple(x.shape[-2:])) for p in proposals]
            proposals = [p[remove_small_boxes(p, 1.0)] for p in proposals]
        sizes = [(int(x.shape[-2]), int(x.shape[-1]))] * len(x)
        return {"features": self.features((x - self.image_mean) / self.image_std), "proposals": proposals,
                "image_sizes": sizes}

    def compute_loss(self, raw: dict[str, Any], targets: list[dict]) -> dict[str, Tensor]:
        """Classification and box losses over sampled proposals (the ground truth is added to them)."""
        cls, box = self.roi_heads.loss(raw["features"], raw["proposals"], targets, raw["image_sizes"])
        return {"loss_classifier": cls, "loss_box_reg": box}

    def detect_raw(self, raw: dict[str, Any], **thresholds: Any) -> list[dict[str, Tensor]]:
        """Detections (labels 1-based) of the raw outputs; an image without proposals gets none."""
        props = raw["proposals"]
        if sum(len(p) for p in props) == 0:
            e = raw["features"][next(iter(raw["features"]))]
            return [{"boxes": e.new_zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64, device=e.device),
                     "scores": e.new_zeros(0)} for _ in props]
        logits, deltas = self.roi_heads.head(raw["features"], props, raw["image_sizes"])
        return self.roi_heads.postprocess(logits, deltas, props, raw["image_sizes"], **thresholds)

    def forward(self, images, targets: list[dict] | None = None):
        """A Tensor batch: raw outputs. A list of (3, H, W) images (torchvision's style): the loss dict in
        training (1-based labels in `targets`), detections in eval."""
        if isinstance(images, Tensor) and targets is None:
            return self.forward_raw(images)
        outs = []
        for i, im in enumerate(images):
            raw = self.forward_raw(im[None])
            if self.training:
                if targets is None:
                    raise InputError("in training mode the detector needs targets (a list of {'boxes', 'labels'})")
                outs.append(self.compute_loss(raw, [targets[i]]))
            else:
                outs.extend(self.detect_raw(raw))
        if self.training:
            return {k: sum(o[k] for o in outs) / len(outs) for k in outs[0]}
        return outs


def fast_rcnn(features: nn.Module, num_classes: int, *, representation_size: int = 256, roi_output_size: int = 7,
              sampling_ratio: int = 2, box_batch_size_per_image: int = 64, **kwargs) -> ProposalDetector:
    """Fast R-CNN over a single-map feature extractor (attribute `out_channels`), selective-search proposals."""
    heads = RoIHeads(MultiScaleRoIAlign(["0"], roi_output_size, sampling_ratio),
                     TwoMLPHead(features.out_channels * roi_output_size ** 2, representation_size),
                     FastRCNNPredictor(representation_size, num_classes + 1),
                     batch_size_per_image=box_batch_size_per_image)
    return ProposalDetector(features, heads, num_classes, **kwargs)

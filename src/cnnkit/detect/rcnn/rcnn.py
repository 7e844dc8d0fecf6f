"""R-CNN (Girshick et al. 2014): every proposal is cropped from the image, warped to a fixed size (bilinear, the
aspect ratio not kept, as the paper's "warp"), and classified by a whole backbone on its own; a linear layer on
the same features regresses the class-specific box correction. The paper's SVMs are replaced by the softmax of
its fine-tuning stage (Fast R-CNN showed the softmax does as well); per-class NMS as in the paper.
"""

from __future__ import annotations

from collections import OrderedDict

import torch.nn as nn
from torch import Tensor

from cnnkit.detect.rcnn.fast_rcnn import ProposalDetector
from cnnkit.detect.rcnn.roi_heads import FastRCNNPredictor, RoIHeads
from cnnkit.ops import MultiScaleRoIAlign


class ImageAsFeatures(nn.Module):
    """The normalised image as the only "feature map": RoI align on it is the warp of each proposal."""

    def forward(self, x: Tensor) -> OrderedDict[str, Tensor]:
        return OrderedDict([("0", x)])


class WarpedBackbone(nn.Module):
    """A zoo backbone run on each warped crop: (K, 3, s, s) -> (K, num_features) pooled features."""

    def __init__(self, body: nn.Module) -> None:
        super().__init__()
        self.body = body

    def forward(self, crops: Tensor) -> Tensor:
        return self.body.forward_head(self.body.forward_features(crops), pre_logits=True)


def rcnn(body: nn.Module, num_classes: int, *, warp_size: int = 32, box_batch_size_per_image: int = 64,
         **kwargs) -> ProposalDetector:
    """R-CNN on a zoo backbone `body` (built with num_classes=0): proposals warped to warp_size x warp_size."""
    heads = RoIHeads(MultiScaleRoIAlign(["0"], warp_size, 2), WarpedBackbone(body),
                     FastRCNNPredictor(body.num_features, num_classes + 1),
                     batch_size_per_image=box_batch_size_per_image)
    return ProposalDetector(ImageAsFeatures(), heads, num_classes, **kwargs)

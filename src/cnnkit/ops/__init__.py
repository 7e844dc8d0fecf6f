"""Pure tensor-in/tensor-out operations: boxes, NMS, anchors, box coding, RoI pooling, batch-norm folding.

Box operations keep torchvision.ops' names and arguments, so `from torchvision.ops import nms` becomes
`from cnnkit.ops import nms` and the rest of the code stays as it was.
"""

from cnnkit.ops.anchors import AnchorGenerator, cell_anchors, grid_anchors
from cnnkit.ops.box_coder import BoxCoder
from cnnkit.ops.boxes import (
    BOX_FORMATS,
    box_area,
    box_convert,
    box_iou,
    boxes_to_normalized,
    boxes_to_pixels,
    clip_boxes_to_image,
    generalized_box_iou,
    remove_small_boxes,
)
from cnnkit.ops.fold_bn import fold_batchnorms, fold_conv_bn, fold_linear_bn
from cnnkit.ops.nms import batched_nms, filter_detections, nms
from cnnkit.ops.roi import MultiScaleRoIAlign, boxes_to_rois, roi_align, roi_pool

__all__ = [
    "BOX_FORMATS",
    "AnchorGenerator",
    "BoxCoder",
    "MultiScaleRoIAlign",
    "batched_nms",
    "box_area",
    "box_convert",
    "box_iou",
    "boxes_to_normalized",
    "boxes_to_pixels",
    "boxes_to_rois",
    "cell_anchors",
    "clip_boxes_to_image",
    "filter_detections",
    "fold_batchnorms",
    "fold_conv_bn",
    "fold_linear_bn",
    "generalized_box_iou",
    "grid_anchors",
    "nms",
    "remove_small_boxes",
    "roi_align",
    "roi_pool",
]

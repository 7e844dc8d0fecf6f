"""YOLO v2-style detection: head, target assignment, loss, k-means anchors, decoding.

The network's raw output is a Tensor (N, S_h, S_w, B, 5 + C): for each of the S_h x S_w grid cells and each of
its B anchors, `(t_o, t_x, t_y, t_h, t_w, class logits...)`, the curriculum's `(p_c, b_x, b_y, b_h, b_w, c_1..c_n)`
before their activations: p_c = sigmoid(t_o), b_x = (col + sigmoid(t_x)) * stride, b_h = anchor_h * exp(t_h) ...
"""

from cnnkit.detect.yolo.anchors_kmeans import anchor_iou, kmeans_anchors
from cnnkit.detect.yolo.decode import decode_predictions, postprocess
from cnnkit.detect.yolo.head import YoloHead, space_to_depth
from cnnkit.detect.yolo.loss import YoloLoss
from cnnkit.detect.yolo.targets import YoloTargets, build_targets, decode_boxes, encode_boxes

__all__ = ["YoloHead", "YoloLoss", "YoloTargets", "anchor_iou", "build_targets", "decode_boxes", "decode_predictions",
           "encode_boxes", "kmeans_anchors", "postprocess", "space_to_depth"]

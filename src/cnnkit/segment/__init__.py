"""Semantic segmentation: losses, metrics, tiled prediction, and the segmentation task.

    from cnnkit.segment import SegmentationLoss, SegmentationMeter, predict_tiled
"""

from cnnkit.segment.losses import IGNORE_INDEX, SegmentationLoss, cross_entropy, dice_loss
from cnnkit.segment.metrics import SegmentationMeter, confusion_matrix, scores_from_confusion
from cnnkit.segment.tiling import predict_tiled, predict_whole

__all__ = ["IGNORE_INDEX", "SegmentationLoss", "SegmentationMeter", "confusion_matrix", "cross_entropy",
           "dice_loss", "predict_tiled", "predict_whole", "scores_from_confusion"]

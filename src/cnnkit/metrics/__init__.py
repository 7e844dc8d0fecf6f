"""Detection metrics: COCO mAP (pycocotools' definition, NumPy only), VOC AP50, precision-recall pictures.

Importing this package does not import torch.
"""

from cnnkit.metrics.coco import (
    COCO_STAT_NAMES,
    COCOEvalResult,
    evaluate_coco,
    evaluate_detections,
)
from cnnkit.metrics.voc import evaluate_voc, voc_ap

__all__ = ["COCO_STAT_NAMES", "COCOEvalResult", "evaluate_coco", "evaluate_detections", "evaluate_voc", "voc_ap"]

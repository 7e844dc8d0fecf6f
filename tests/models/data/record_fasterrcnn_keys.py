"""Write torchvision_fasterrcnn_state_dict.json: the key names and shapes of torchvision's
`fasterrcnn_resnet50_fpn(num_classes=91)` state dict (v1, torchvision >= 0.13).

No torchvision environment was at hand, so the list is derived from torchvision's public sources
(torchvision/models/detection/faster_rcnn.py, rpn.py, backbone_utils.py, ops/feature_pyramid_network.py,
ops/misc.py) and from the recorded ResNet-50 keys of torchvision_state_dicts.json:
- backbone.body: resnet50 without `fc`, FrozenBatchNorm2d (weight, bias, running_mean, running_var: no
  num_batches_tracked);
- backbone.fpn.inner_blocks.i.0 (1x1, bias) and layer_blocks.i.0 (3x3, bias): Conv2dNormActivation with
  norm_layer=None, in_channels [256, 512, 1024, 2048] -> 256; LastLevelMaxPool has no parameters;
- rpn.head.conv.0.0 (3x3, 256 -> 256, bias; conv_depth=1), cls_logits (3 anchors), bbox_pred (12);
- roi_heads.box_head.fc6 (256*7*7 -> 1024), fc7 (1024 -> 1024); box_predictor.cls_score (91), bbox_pred (364).
With torchvision installed, `{k: list(v.shape) for k, v in fasterrcnn_resnet50_fpn().state_dict().items()}`
gives the same list (the order of state_dict()).

    .venv/bin/python tests/models/data/record_fasterrcnn_keys.py
"""

from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).parent


def keys() -> list[list]:
    resnet = json.loads((HERE / "torchvision_state_dicts.json").read_text())["resnet50"]
    out = [[f"backbone.body.{k}", s] for k, s in resnet
           if not k.startswith("fc.") and not k.endswith("num_batches_tracked")]
    for i, c in enumerate((256, 512, 1024, 2048)):
        out += [[f"backbone.fpn.inner_blocks.{i}.0.weight", [256, c, 1, 1]],
                [f"backbone.fpn.inner_blocks.{i}.0.bias", [256]]]
    for i in range(4):
        out += [[f"backbone.fpn.layer_blocks.{i}.0.weight", [256, 256, 3, 3]],
                [f"backbone.fpn.layer_blocks.{i}.0.bias", [256]]]
    out += [["rpn.head.conv.0.0.weight", [256, 256, 3, 3]], ["rpn.head.conv.0.0.bias", [256]],
            ["rpn.head.cls_logits.weight", [3, 256, 1, 1]], ["rpn.head.cls_logits.bias", [3]],
            ["rpn.head.bbox_pred.weight", [12, 256, 1, 1]], ["rpn.head.bbox_pred.bias", [12]],
            ["roi_heads.box_head.fc6.weight", [1024, 12544]], ["roi_heads.box_head.fc6.bias", [1024]],
            ["roi_heads.box_head.fc7.weight", [1024, 1024]], ["roi_heads.box_head.fc7.bias", [1024]],
            ["roi_heads.box_predictor.cls_score.weight", [91, 1024]],
            ["roi_heads.box_predictor.cls_score.bias", [91]],
            ["roi_heads.box_predictor.bbox_pred.weight", [364, 1024]],
            ["roi_heads.box_predictor.bbox_pred.bias", [364]]]
    return out


if __name__ == "__main__":
    body = ",\n".join(json.dumps(k) for k in keys())
    (HERE / "torchvision_fasterrcnn_state_dict.json").write_text(
        '{"fasterrcnn_resnet50_fpn": [\n' + body + "\n]}\n")

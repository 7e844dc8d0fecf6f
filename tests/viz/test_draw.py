"""draw_annotations: boxes, masks and landmarks land where the target says."""

from __future__ import annotations

import numpy as np
import torch

from cnnkit.viz.draw import class_colour, draw_annotations


def test_boxes_masks_and_landmarks_are_drawn_in_place():
    img = np.zeros((40, 50, 3), np.uint8)
    mask = np.zeros((1, 40, 50), np.uint8)
    mask[0, 20:30, 5:15] = 1
    target = {"boxes": torch.tensor([[10.0, 8.0, 30.0, 18.0]]), "labels": torch.tensor([2]), "masks": mask,
              "keypoints": np.array([[[40.0, 35.0]]])}
    out = draw_annotations(img, target, ["a", "b", "c"], scale=1.0, alpha=0.5)
    assert out.shape == (40, 50, 3) and out.dtype == np.uint8
    col = np.array(class_colour(2))
    assert np.array_equal(out[17, 20], col)  # bottom edge of the box, class colour
    assert np.allclose(out[25, 10], col * 0.5, atol=1)  # mask overlay at half opacity on black
    assert out[35, 40].sum() > 0 and out[2, 45].sum() == 0  # the landmark dot; untouched elsewhere
    big = draw_annotations(torch.zeros(3, 40, 50), target, None)  # float CHW, enlarged for the text
    assert big.shape[0] >= 384 and big.shape[1] > big.shape[0]


def test_semantic_and_scores():
    sem = np.zeros((20, 20), np.int64)
    sem[:5] = 1
    sem[-2:] = 255
    out = draw_annotations(np.zeros((20, 20, 3), np.uint8), {"semantic": sem}, scale=1.0, alpha=1.0)
    assert np.array_equal(out[0, 0], class_colour(0)) and np.array_equal(out[-1, 0], (255, 255, 255))
    assert out[10, 10].sum() == 0
    d = draw_annotations(np.zeros((20, 20, 3), np.uint8), {"boxes": [[2, 2, 10, 10]], "labels": [0],
                                                          "scores": [0.9]}, ["x"])
    assert d.sum() > 0

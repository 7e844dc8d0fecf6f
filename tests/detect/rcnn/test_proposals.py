"""Selective search: the hierarchy, the ranking, and the recall target on the built-in scenes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cnnkit.detect.rcnn.proposals import SINGLE, Strategy, hierarchical_grouping, selective_search
from cnnkit.detect.rcnn.recall import proposal_recall
from cnnkit.errors import InputError


def test_hierarchy_ends_with_the_whole_image_and_covers_each_segment():
    rng = np.random.default_rng(0)
    img = np.zeros((40, 60, 3))
    img[5:20, 5:25] = (1.0, 0.0, 0.0)
    img[22:38, 30:55] = (0.0, 0.0, 1.0)
    img += rng.normal(0, 0.01, img.shape)
    boxes, pos = hierarchical_grouping(np.clip(img, 0, 1), Strategy("rgb", 50, "ctsf"))
    n_segments = (len(boxes) + 1) // 2
    assert len(boxes) == 2 * n_segments - 1          # one region per merge of a connected segmentation
    assert boxes[-1].tolist() == [0, 0, 60, 40] and pos[-1] == 1
    assert any(b.tolist() == [5, 5, 25, 20] for b in boxes)   # the red rectangle is a region
    assert any(b.tolist() == [30, 22, 55, 38] for b in boxes)


def test_selective_search_is_ranked_unique_and_seeded():
    rng = np.random.default_rng(1)
    img = (rng.random((48, 48, 3)) * 255).astype(np.uint8)
    a = selective_search(img, strategies=SINGLE, max_proposals=None, seed=3)
    b = selective_search(img, strategies=SINGLE, max_proposals=None, seed=3)
    assert torch.equal(a, b)
    assert len(torch.unique(a, dim=0)) == len(a)
    assert len(selective_search(img, strategies=SINGLE, max_proposals=5)) == 5
    assert ((a[:, 2] > a[:, 0]) & (a[:, 3] > a[:, 1])).all()
    assert (a[:, :2] >= 0).all() and (a[:, 2] <= 48).all() and (a[:, 3] <= 48).all()


def test_bad_images_get_one_line_errors():
    with pytest.raises(InputError, match="selective search needs"):
        selective_search(np.zeros((1, 5, 3), np.uint8))
    with pytest.raises(InputError, match="colour space"):
        hierarchical_grouping(np.zeros((8, 8, 3)), Strategy("xyz", 50, "ctsf"))


def test_recall_counts_the_first_n_proposals():
    gt = [torch.tensor([[0.0, 0, 10, 10], [20, 20, 30, 30]]), torch.zeros(0, 4)]
    props = [torch.tensor([[50.0, 50, 60, 60], [0, 0, 10, 11], [21, 20, 30, 30]]), torch.tensor([[0.0, 0, 5, 5]])]
    assert proposal_recall(props, gt, counts=(1, 2, 3)) == {1: 0.0, 2: 0.5, 3: 1.0}
    assert proposal_recall([torch.zeros(0, 4)], [gt[0]], counts=(10,)) == {10: 0.0}


def test_selective_search_recall_on_scenes_reaches_the_target():
    from cnnkit.data.scene_dataset import load_scenes

    ds = load_scenes(train=0, val=0, test=12, progress=False, masks=False)["test"]
    props, gts = [], []
    for i in range(len(ds)):
        item = ds.raw(i)
        props.append(selective_search(item.image, max_proposals=500))
        gts.append(torch.as_tensor(item.boxes))
    recall = proposal_recall(props, gts, counts=(500,))[500]
    assert recall >= 0.9, recall

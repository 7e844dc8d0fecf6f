"""Built-in scenes: determinism, annotation consistency, splits, views, letterbox."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from cnnkit.augment import Compose, HorizontalFlip, Sample
from cnnkit.data.detection_dataset import detection_collate
from cnnkit.data.letterbox import letterbox_params, letterbox_sample, unletterbox_boxes, unletterbox_points
from cnnkit.data.scene_dataset import load_scenes
from cnnkit.data.scenes import ALL_CLASSES, FLIP_PAIRS, SPLIT_BASE, SceneConfig, make_scene, one_object_config, split_of
from cnnkit.data.task_data import get_task_data, list_task_data
from cnnkit.errors import InputError, UnknownNameError


def _check_scene(sc, size):
    n = len(sc.labels)
    assert sc.image.shape == (size, size, 3) and sc.image.dtype == np.uint8
    assert sc.boxes.shape == (n, 4) and sc.landmarks.shape == (n, 4, 2) and sc.visibility.shape == (n, 4)
    masks = sc.masks
    assert masks.shape == (n, size, size)
    assert masks.sum(0).max(initial=0) <= 1  # visible masks never overlap
    for i in range(n):
        ys, xs = np.nonzero(masks[i])
        assert len(xs) > 0
        # box = tight box of the visible pixels, checked by a plain loop-free recomputation
        assert tuple(sc.boxes[i]) == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
    sem = sc.semantic
    for y, x in [(0, 0), (size // 2, size // 2), (size - 1, 3)]:
        k = sc.instance_map[y, x]
        assert sem[y, x] == (0 if k == 0 else sc.labels[k - 1] + 1)
    assert np.all(sc.landmarks >= 0) and np.all(sc.landmarks <= size)


def test_scenes_are_deterministic_and_consistent():
    cfg = SceneConfig(size=96, seed=3)
    for i in range(30):
        a, b = make_scene(cfg, i), make_scene(cfg, i)
        assert np.array_equal(a.image, b.image) and np.array_equal(a.boxes, b.boxes)
        _check_scene(a, 96)
    assert not np.array_equal(make_scene(cfg, 0).image, make_scene(SceneConfig(size=96, seed=4), 0).image)
    counts = [len(make_scene(cfg, i).labels) for i in range(60)]
    assert min(counts) >= 1 and max(counts) <= 4 and len(set(counts)) >= 3


def test_digits_and_occlusion_limit():
    cfg = SceneConfig(size=128, classes=ALL_CLASSES, min_objects=4, max_objects=6, seed=1, max_occlusion=0.3)
    seen = set()
    for i in range(40):
        sc = make_scene(cfg, SPLIT_BASE["test"] + i)
        _check_scene(sc, 128)
        seen |= {cfg.classes[k] for k in sc.labels}
    assert any(c.isdigit() for c in seen) and any(not c.isdigit() for c in seen)


def test_landmarks_match_the_shape():
    """A square's landmarks are its corners: the rasterised pixels sit inside the landmark quadrilateral."""
    cfg = one_object_config(size=128, classes=("square",), seed=5)
    for i in range(10):
        sc = make_scene(cfg, i)
        (x1, y1, x2, y2), pts = sc.boxes[0], sc.landmarks[0]
        # the box of the corners is the box of the shape, to a pixel (anti-aliasing rounds the edge)
        assert np.allclose([pts[:, 0].min(), pts[:, 1].min(), pts[:, 0].max(), pts[:, 1].max()],
                           [x1, y1, x2, y2], atol=1.0)
        # ordering: top-left has the smallest x + y, bottom-right the largest
        s = pts.sum(1)
        assert s.argmin() == 0 and s.argmax() == 2


def test_split_ranges_and_digit_parts():
    assert split_of(0) == "train" and split_of(SPLIT_BASE["val"]) == "val"
    assert split_of(SPLIT_BASE["val"] - 1) == "train" and split_of(SPLIT_BASE["test"] + 5) == "test"
    from cnnkit.data.scenes import _digit_members

    parts = [set(np.concatenate(list(_digit_members(s).values()))) for s in ("train", "val", "test")]
    assert not (parts[0] & parts[1]) and not (parts[0] & parts[2]) and not (parts[1] & parts[2])
    assert sum(len(p) for p in parts) == 1797


def test_speed_1000_scenes():
    cfg = SceneConfig()
    t = time.process_time()  # CPU time: other processes on the machine do not count
    for i in range(300):
        make_scene(cfg, i)
    per = (time.process_time() - t) / 300
    assert per < 0.01, f"{per * 1e3:.1f} ms per 128x128 scene"  # 1000 in a few seconds, with room to spare


def test_load_scenes_views_and_disjoint_splits():
    parts = load_scenes(train=12, val=4, test=4, size=64, seed=0)
    assert set(parts) == {"train", "val", "test"}
    img, tgt = parts["train"][0]
    assert img.shape == (3, 64, 64) and img.dtype == torch.float32 and 0 <= img.min() and img.max() <= 1
    n = len(tgt["labels"])
    assert tgt["boxes"].shape == (n, 4) and tgt["boxes"].dtype == torch.float32
    assert tgt["labels"].dtype == torch.int64
    assert tgt["masks"].shape == (n, 64, 64) and tgt["masks"].dtype == torch.uint8
    assert tgt["keypoints"].shape == (n, 4, 2)
    ids = {s: {parts[s][i][1]["image_id"] for i in range(len(parts[s]))} for s in parts}
    assert not (ids["train"] & ids["val"]) and not (ids["train"] & ids["test"])
    images, targets = detection_collate([parts["train"][i] for i in range(3)])
    assert images.shape == (3, 3, 64, 64) and len(targets) == 3

    sem = load_scenes(train=3, val=0, test=0, size=64, view="semantic")["train"]
    img, mask = sem[0]
    assert mask.shape == (64, 64) and mask.dtype == torch.int64
    raw = sem.raw(0)
    assert torch.equal(mask, torch.from_numpy(raw.semantic))
    assert sem.semantic_classes[0] == "background"

    loc = load_scenes(train=5, val=0, test=0, size=64, view="localisation")["train"]
    assert all(len(loc[i][1]["labels"]) == 1 for i in range(5))


def test_transform_moves_targets_and_letterbox():
    flip = Compose([HorizontalFlip(p=1.0)])
    plain = load_scenes(train=4, val=0, test=0, size=64, seed=2)["train"]
    flipped = load_scenes(train=4, val=0, test=0, size=64, seed=2, transform=flip)["train"]
    img0, t0 = plain[1]
    img1, t1 = flipped[1]
    assert torch.equal(img1, img0.flip(-1))
    assert torch.allclose(t1["boxes"][:, [2, 0]], 64 - t0["boxes"][:, [0, 2]])
    assert torch.equal(t1["masks"], t0["masks"].flip(-1))
    boxed = load_scenes(train=2, val=0, test=0, size=64, letterbox=96)["train"]
    img, t = boxed[0]
    assert img.shape == (3, 96, 96)
    back = unletterbox_boxes(t["boxes"], t["letterbox"])
    assert torch.allclose(back, torch.from_numpy(boxed.raw(0).boxes), atol=1e-4)


@settings(max_examples=30, deadline=None)
@given(h=st.integers(1, 300), w=st.integers(1, 300), size=st.integers(8, 256))
def test_letterbox_maps_back(h, w, size):
    info = letterbox_params((h, w), size)
    assert info.out_size == (size, size)
    nh, nw = round(h * info.scale_y), round(w * info.scale_x)
    assert max(nh, nw) == size or max(h, w) * size / max(h, w) == size
    assert 0 <= info.pad_x and info.pad_x + nw <= size and 0 <= info.pad_y and info.pad_y + nh <= size
    pts = torch.tensor([[0.0, 0.0], [w, h], [w / 3, h / 2]])
    moved = pts * torch.tensor([info.scale_x, info.scale_y]) + torch.tensor([info.pad_x, info.pad_y])
    assert torch.allclose(unletterbox_points(moved, info), pts, atol=1e-3)


def test_letterbox_image_content_and_stride():
    img = torch.rand(3, 30, 60)
    s, info = letterbox_sample(Sample(img, boxes=torch.tensor([[0.0, 0.0, 60.0, 30.0]])), 120)
    assert s.image.shape == (3, 120, 120) and info.pad_y == 30 and info.pad_x == 0
    assert torch.allclose(s.boxes, torch.tensor([[0.0, 30.0, 120.0, 90.0]]))
    assert torch.allclose(s.image[:, :30], torch.full((3, 30, 120), 114 / 255))
    s2, info2 = letterbox_sample(Sample(torch.rand(3, 33, 50)), None, stride=32)
    assert s2.image.shape == (3, 64, 64) and info2.scale_x == 1.0


def test_registry_and_bad_config():
    assert "scenes" in list_task_data()
    assert get_task_data("scenes") is load_scenes
    with pytest.raises(UnknownNameError, match="scenes"):
        get_task_data("scene")
    with pytest.raises(InputError):
        SceneConfig(classes=("circle", "hexagon"))
    with pytest.raises(InputError):
        SceneConfig(min_objects=3, max_objects=2)
    with pytest.raises(InputError):
        load_scenes(train=-1)
    assert FLIP_PAIRS == ((0, 1), (2, 3))


def test_empty_scenes_are_valid():
    parts = load_scenes(train=6, val=0, test=0, size=64, min_objects=0, max_objects=0)
    img, t = parts["train"][0]
    assert t["boxes"].shape == (0, 4) and t["labels"].shape == (0,) and t["masks"].shape == (0, 64, 64)


def test_boxes_and_size_matches_raw(tmp_path):
    from cnnkit.data.detection_files import load_detection
    from cnnkit.data.scene_export import export_scenes

    ds = load_scenes(train=5, val=0, test=0, size=48)["train"]
    export_scenes(tmp_path, "voc", counts={"train": 5}, config=SceneConfig(size=48), progress=False)
    files = load_detection(tmp_path, val_fraction=0, test_fraction=0)["train"]
    for d in (ds, files):
        for i in range(len(d)):
            boxes, labels, size = d.boxes_and_size(i)
            raw = d.raw(i)
            assert np.array_equal(boxes, raw.boxes) and np.array_equal(labels, raw.labels)
            assert size == raw.image.shape[:2]


@pytest.mark.parametrize("spec", ["flip,vflip", "crop", "resized_crop", "rotate=30,scale", "elastic", "color"])
def test_augmented_targets_stay_consistent(spec):
    """Under every augmentation the target keeps its layout: N boxes, N masks, N keypoint sets, boxes inside."""
    from cnnkit.augment import build_transform

    aug = build_transform(spec, image_size=64, seed=1)
    ds = load_scenes(train=12, val=0, test=0, size=64, seed=4, transform=aug, letterbox=80, progress=False)["train"]
    for i in range(len(ds)):
        img, t = ds[i]
        n = len(t["labels"])
        assert img.shape == (3, 80, 80)
        assert t["boxes"].shape == (n, 4) and t["masks"].shape == (n, 80, 80) and t["keypoints"].shape == (n, 4, 2)
        b = t["boxes"]
        assert torch.all(b[:, 2:] - b[:, :2] >= 1) and torch.all(b >= 0) and torch.all(b <= 80)
        for k in range(n):  # a mask's pixels lie inside its box, up to the one-pixel rounding of nearest resampling
            ys, xs = torch.nonzero(t["masks"][k], as_tuple=True)
            if len(xs):
                assert xs.min() >= b[k, 0] - 1.5 and xs.max() + 1 <= b[k, 2] + 1.5
                assert ys.min() >= b[k, 1] - 1.5 and ys.max() + 1 <= b[k, 3] + 1.5

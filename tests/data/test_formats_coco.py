"""COCO JSON: exact round trips, bad objects named, and fuzzed files give only cnnkit errors."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from annotation_strategies import CLASSES, image_anns, mutate, only_cnnkit_errors, same_annotations, write_pngs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cnnkit.data.annotations import Annotations, ImageAnn
from cnnkit.data.coco import read_coco, rle_counts, write_coco
from cnnkit.data.sources import DataWarning
from cnnkit.errors import FileFormatError, InputError, MissingFileError

_SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@_SETTINGS
@given(images=image_anns(masks=True, keypoints=3, crowd=True))
def test_round_trip_is_exact(tmp_path, images):
    ann = Annotations(list(CLASSES), images, tmp_path, category_ids=[3, 7, 11], keypoint_names=["a", "b", "c"])
    path = write_coco(ann, tmp_path / "ann.json")
    back = read_coco(path, check_images=False, strict=True)
    same_annotations(ann, back, masks=True, keypoints=True, crowd=True)
    assert back.category_ids == [3, 7, 11] and back.keypoint_names == ["a", "b", "c"]


def test_rle_counts_matches_pycocotools():
    from pycocotools import mask as mask_utils

    rng = np.random.default_rng(0)
    for _ in range(20):
        m = (rng.random((13, 9)) < rng.random()).astype(np.uint8)
        rle = mask_utils.encode(np.asfortranarray(m))
        counts = rle_counts(rle["counts"].decode())
        # the slow, obvious reference: run lengths of the column-major flattening, starting with zeros
        flat = m.ravel(order="F")
        runs, cur, n = [], 0, 0
        for v in flat:
            if v == cur:
                n += 1
            else:
                runs.append(n)
                cur, n = v, 1
        runs.append(n)
        assert counts.tolist() == runs


def _rle_counts_loop(s: str) -> list[int]:
    """pycocotools' rleFrString as a plain loop: the slow reference of the vectorised decoder."""
    counts: list[int] = []
    p = 0
    while p < len(s):
        x, k, more = 0, 0, True
        while more:
            if p >= len(s):
                raise ValueError("truncated")
            c = ord(s[p]) - 48
            if not 0 <= c < 64:
                raise ValueError("alphabet")
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if k > 12:
                raise ValueError("too long")
            if not more and (c & 0x10):
                x |= -1 << (5 * k)
        if abs(x) >= 2**40:
            raise ValueError("too large")
        if len(counts) > 2:
            x += counts[-2]
        counts.append(x)
    return counts


@settings(max_examples=300, deadline=None)
@given(s=st.one_of(st.text(alphabet=st.characters(min_codepoint=40, max_codepoint=115), max_size=60),
                   st.lists(st.integers(-(2**36), 2**36), max_size=20).map(lambda v: _encode(v))))
def test_vectorised_rle_decoder_equals_the_loop(s):
    try:
        want = _rle_counts_loop(s)
    except ValueError:
        with pytest.raises(ValueError):
            rle_counts(s)
        return
    assert rle_counts(s).tolist() == want


def _encode(values: list[int]) -> str:
    """pycocotools' rleToString for arbitrary run lengths (the deltas from the fourth value on)."""
    out = []
    for i, v in enumerate(values):
        x = v - values[i - 2] if i > 2 else v
        more = True
        while more:
            c = x & 0x1F
            x >>= 5
            more = x != -1 if c & 0x10 else x != 0
            if more:
                c |= 0x20
            out.append(chr(c + 48))
    return "".join(out)


def test_polygon_masks_and_image_lookup(tmp_path):
    img = ImageAnn("a.png", 20, 10, np.array([[2, 2, 12, 8]], np.float32), np.array([1]),
                   segmentations=[[[2, 2, 12, 2, 12, 8, 2, 8]]], image_id=1)
    ann = Annotations(CLASSES, [img], tmp_path)
    write_pngs(tmp_path / "images", [img])
    write_coco(ann, tmp_path / "ann.json")
    back = read_coco(tmp_path / "ann.json", strict=True)  # finds images/a.png beside the json
    m = back.images[0].masks()
    assert m.shape == (1, 10, 20) and m[0, 3:7, 3:11].all() and m[0, 0].sum() == 0


def _coco(tmp_path, anns, images=None, cats=None):
    images = images if images is not None else [{"id": 1, "file_name": "a.png", "width": 20, "height": 10}]
    data = {"images": images, "annotations": anns, "categories": cats or [{"id": 1, "name": "cat"}]}
    p = tmp_path / "bad.json"
    p.write_text(json.dumps(data))
    return p


@pytest.mark.parametrize(
    "ann, words",
    [
        ({"id": 5, "image_id": 1, "category_id": 1, "bbox": [15, 2, 10, 3]}, "outside the 20x10 image"),
        ({"id": 5, "image_id": 1, "category_id": 1, "bbox": [1, 2, -3, 3]}, "negative size"),
        ({"id": 5, "image_id": 1, "category_id": 9, "bbox": [1, 2, 3, 3]}, "unknown class"),
        ({"id": 5, "image_id": 4, "category_id": 1, "bbox": [1, 2, 3, 3]}, "names no .readable. image"),
        ({"id": 5, "image_id": 1, "category_id": 1, "bbox": [1, 2, 3]}, "bbox must be"),
        ({"id": 5, "image_id": 1, "category_id": 1, "bbox": [1, 2, 3, 3], "segmentation": {"size": [10, 20],
                                                                                            "counts": "zz~~"}},
         "RLE"),
        ({"id": 5, "image_id": 1, "category_id": 1, "bbox": [1, 2, 3, 3],
          "segmentation": [[0, 0, 1e9, 0, 5, 5]]}, "outside"),
    ],
)
def test_bad_objects_named_strict_or_skipped(tmp_path, ann, words):
    good = {"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 4, 4]}
    p = _coco(tmp_path, [good, ann])
    with pytest.raises(FileFormatError, match=words) as e:
        read_coco(p, strict=True, check_images=False)
    assert "bad.json" in str(e.value) and "annotation #1" in str(e.value)
    with pytest.warns(DataWarning, match=words):
        back = read_coco(p, check_images=False)
    assert len(back.images[0].labels) == 1  # the good one kept


def test_missing_image_and_malformed_file(tmp_path):
    p = _coco(tmp_path, [])
    with pytest.raises(MissingFileError, match="a.png"):
        read_coco(p, strict=True)
    with pytest.warns(DataWarning, match="not found"):
        assert read_coco(p).images == []
    (tmp_path / "t.json").write_text('{"images": [')
    with pytest.raises(FileFormatError, match="t.json: not a readable JSON"):
        read_coco(tmp_path / "t.json")
    (tmp_path / "l.json").write_text("[1, 2]")
    with pytest.raises(FileFormatError, match="not a COCO annotation file"):
        read_coco(tmp_path / "l.json")
    with pytest.raises(MissingFileError):
        read_coco(tmp_path / "none.json")


def test_writer_refuses_bad_input_and_leaves_old_file(tmp_path):
    target = tmp_path / "out.json"
    target.write_text("old")
    bad = Annotations(CLASSES, [ImageAnn("a.png", 5, 5, np.zeros((1, 4), np.float32), np.array([7]))])
    with pytest.raises(InputError, match="labels"):
        write_coco(bad, target)
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["out.json"]


_VALID = {
    "images": [{"id": 1, "file_name": "a.png", "width": 20, "height": 10}],
    "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 4, 4], "iscrowd": 0,
                     "segmentation": {"size": [10, 20], "counts": "R11000X5"}, "keypoints": [1, 2, 2, 3, 4, 1]}],
    "categories": [{"id": 1, "name": "cat", "keypoints": ["l", "r"]}],
}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzzed_files_give_only_cnnkit_errors(tmp_path, data):
    raw = json.dumps(_VALID).encode()
    p = tmp_path / "f.json"
    p.write_bytes(mutate(raw, data.draw))
    out = only_cnnkit_errors(read_coco, p, check_images=False, strict=data.draw(st.booleans()))
    if isinstance(out, Annotations):
        for img in out.images:
            only_cnnkit_errors(img.masks)


@pytest.mark.parametrize("payload", [
    "[" * 100_000 + "]" * 100_000,                                       # deep nesting
    json.dumps({**_VALID, "images": [{"id": [1], "file_name": {}, "width": 1e400}]}).replace("Infinity", "1e999"),
    json.dumps({**_VALID, "annotations": [{"image_id": 1, "category_id": [1], "bbox": [1, 1, 1, 1]}]}),
    json.dumps({**_VALID, "categories": [{"id": 1, "name": "a"}, {"id": 1, "name": "b"}]}),
    json.dumps({**_VALID, "annotations": [{**_VALID["annotations"][0],
                                           "segmentation": {"size": [10, 20], "counts": [300]}}]}),
    "\ufeff\x00\x01",
])
def test_adversarial_files(tmp_path, payload):
    p = tmp_path / "adv.json"
    p.write_text(payload)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        out = only_cnnkit_errors(read_coco, p, check_images=False)
    if isinstance(out, Annotations):
        for img in out.images:
            img.masks()


def test_dataset_over_coco_keeps_one_target_layout(tmp_path):
    """Images without masks get empty ones when others have masks; the semantic view needs masks."""
    import torch

    from cnnkit.data.detection_files import load_detection
    from cnnkit.errors import InputError as _InputError

    a = ImageAnn("a.png", 20, 10, np.array([[2, 2, 12, 8]], np.float32), np.array([1]),
                 segmentations=[[[2, 2, 12, 2, 12, 8, 2, 8]]], image_id=1)
    b = ImageAnn("b.png", 20, 10, np.array([[0, 0, 5, 5]], np.float32), np.array([0]), image_id=2)
    c = ImageAnn("c.png", 20, 10, image_id=3)  # no objects: valid
    write_pngs(tmp_path / "images", [a, b, c])
    write_coco(Annotations(CLASSES, [a, b, c], tmp_path), tmp_path / "instances_train.json")
    parts = load_detection(tmp_path / "instances_train.json", val_fraction=0, test_fraction=0, strict=True)
    ds = parts["train"]
    targets = [ds[i][1] for i in range(3)]
    assert [t["masks"].shape for t in targets] == [(1, 10, 20), (1, 10, 20), (0, 10, 20)]
    assert targets[1]["masks"].sum() == 0 and targets[0]["masks"].sum() == 60
    assert targets[2]["boxes"].shape == (0, 4) and targets[2]["labels"].dtype == torch.int64
    sem = load_detection(tmp_path / "instances_train.json", view="semantic", val_fraction=0, test_fraction=0)["train"]
    assert int(sem[0][1].max()) == 2  # class 1 -> 2 in the class map
    write_coco(Annotations(CLASSES, [b], tmp_path), tmp_path / "instances_train.json")
    sem = load_detection(tmp_path / "instances_train.json", view="semantic", val_fraction=0, test_fraction=0)["train"]
    with pytest.raises(_InputError, match="no masks"):
        sem[0]


def test_carved_splits_are_disjoint_and_seeded(tmp_path):
    from cnnkit.data.detection_files import load_detection

    imgs = [ImageAnn(f"i{k}.png", 8, 8, image_id=k + 1) for k in range(40)]
    write_pngs(tmp_path / "images", imgs)
    write_coco(Annotations(CLASSES, imgs, tmp_path), tmp_path / "all.json")
    ids = {}
    for seed in (0, 0, 1):
        parts = load_detection(tmp_path / "all.json", seed=seed)
        got = {s: sorted(ds.source.indices) for s, ds in parts.items()}
        assert {s: len(v) for s, v in got.items()} == {"train": 28, "val": 6, "test": 6}
        flat = [i for v in got.values() for i in v]
        assert sorted(flat) == list(range(40))
        ids.setdefault(seed, got)
        assert ids[seed] == got
    assert ids[0] != ids[1]


def test_image_ids_stay_unique(tmp_path):
    imgs = [ImageAnn("a.png", 5, 5, image_id=0), ImageAnn("b.png", 5, 5, image_id=1)]
    back = read_coco(write_coco(Annotations(CLASSES, imgs), tmp_path / "x.json"), check_images=False, strict=True)
    assert [i.image_id for i in back.images] == [1, 2]
    imgs = [ImageAnn("a.png", 5, 5, image_id=7), ImageAnn("b.png", 5, 5, image_id=3)]
    back = read_coco(write_coco(Annotations(CLASSES, imgs), tmp_path / "y.json"), check_images=False, strict=True)
    assert [i.image_id for i in back.images] == [7, 3]


def test_pycocotools_reads_what_we_write(tmp_path):
    """pycocotools loads the exported scenes; its masks are ours, and the truth scored as detections gives AP 1."""
    import contextlib
    import io

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    from cnnkit.data.scene_export import export_scenes
    from cnnkit.data.scenes import SceneConfig, make_scene

    cfg = SceneConfig(size=64)
    export_scenes(tmp_path, "coco", counts={"val": 6}, config=cfg, progress=False)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        gt = COCO(str(tmp_path / "annotations" / "instances_val.json"))
        for img in gt.dataset["images"]:
            scene = make_scene(cfg, int(img["file_name"][:-4]))
            anns = gt.loadAnns(gt.getAnnIds(imgIds=[img["id"]]))
            assert np.array_equal(np.stack([gt.annToMask(a) for a in anns]), scene.masks)
        dets = [{**a, "score": 1.0} for a in gt.dataset["annotations"]]
        for iou_type in ("bbox", "segm"):
            ev = COCOeval(gt, gt.loadRes(dets), iou_type)
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
            assert ev.stats[0] == pytest.approx(1.0)


@settings(max_examples=60, deadline=None)
@given(items=st.lists(st.tuples(
    st.one_of(st.text(alphabet=st.characters(min_codepoint=40, max_codepoint=115), max_size=30),
              st.lists(st.integers(-5, 40), max_size=12).map(lambda v: _encode(v)),
              st.just("é")),
    st.integers(0, 60)), max_size=12))
def test_batched_rle_check_equals_one_by_one(items):
    """check_rle_strings on many strings at once gives the verdict rle_counts + the coverage check gives each."""
    from cnnkit.data.coco import check_rle_strings

    strings, pixels = [s for s, _ in items], [p for _, p in items]
    got = check_rle_strings(strings, pixels)
    for s, p, verdict in zip(strings, pixels, got, strict=True):
        try:
            c = rle_counts(s)
            ok = bool(np.all(c >= 0)) and int(c.sum()) == p and len(c) <= p + 1
        except ValueError:
            ok = False
        assert (verdict == "") == ok, (s, p, verdict)


def test_batched_rle_check_accepts_real_masks_and_names_bad_ones():
    from cnnkit.data.annotations import encode_masks
    from cnnkit.data.coco import check_rle_strings

    rng = np.random.default_rng(1)
    masks = (rng.random((30, 7, 11)) < rng.random((30, 1, 1))).astype(np.uint8)
    strings = [r["counts"] for r in encode_masks(masks)]
    assert check_rle_strings(strings, [77] * 30) == [""] * 30
    verdicts = check_rle_strings([strings[0], strings[1][:-1] + "z", "", strings[2]], [77, 77, 77, 78])
    assert verdicts[0] == "" and "cover" in verdicts[3] and "cover" in verdicts[2]
    assert verdicts[1] != ""

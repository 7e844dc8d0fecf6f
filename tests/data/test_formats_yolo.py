"""YOLO labels and the ultralytics YAML: exact round trips, path rules, bad rows named, fuzzing."""

from __future__ import annotations

import numpy as np
import pytest
from annotation_strategies import CLASSES, image_anns, mutate, only_cnnkit_errors, same_annotations, write_pngs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cnnkit.data.annotations import Annotations, ImageAnn, Problems
from cnnkit.data.sources import DataWarning
from cnnkit.data.yolo import label_path, read_label_file, read_yolo, write_yolo, yolo_lines
from cnnkit.errors import FileFormatError, MissingFileError

_SETTINGS = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@_SETTINGS
@given(images=image_anns(keypoints=2))
def test_round_trip_is_exact(tmp_path_factory, images):
    d = tmp_path_factory.mktemp("yolo")
    n = len(images)
    splits = {"train": list(range(0, n, 2)), "val": list(range(1, n, 2))}
    ann = Annotations(list(CLASSES), images, d, splits={k: v for k, v in splits.items() if v})
    for split, idx in ann.splits.items():
        write_pngs(d / "images" / split, [images[i] for i in idx])
    yaml_path = write_yolo(ann, d)
    back = read_yolo(yaml_path, strict=True)
    order = [i for s in ("train", "val") for i in ann.splits.get(s, [])]
    expected = Annotations(list(CLASSES), [images[i] for i in order])
    same_annotations(expected, back, keypoints=True)


def test_label_path_rule_and_names_forms(tmp_path):
    assert str(label_path(tmp_path / "ds" / "images" / "train" / "a.jpg")).endswith("ds/labels/train/a.txt")
    assert label_path(tmp_path / "x" / "a.png") == tmp_path / "x" / "a.txt"  # no images/: beside the image
    write_pngs(tmp_path / "ds" / "images" / "train", [ImageAnn("a.png", 10, 10), ImageAnn("b.png", 10, 10)])
    (tmp_path / "ds" / "labels" / "train").mkdir(parents=True)
    (tmp_path / "ds" / "labels" / "train" / "a.txt").write_text("1 0.5 0.5 0.2 0.4\n\n")
    (tmp_path / "ds" / "list.txt").write_text("./images/train/a.png\n./images/train/b.png\n")
    for names in ("[cat, dog]", "{0: cat, 1: dog}"):
        y = tmp_path / "data.yaml"
        y.write_text(f"path: ds\ntrain: images/train\nval: list.txt\nnames: {names}\n")
        ann = read_yolo(y, strict=True)
        assert ann.classes == ["cat", "dog"] and len(ann.splits["train"]) == 2 and len(ann.splits["val"]) == 2
        a, b = ann.images[0], ann.images[1]  # b has no label file: an image with no objects
        assert np.allclose(a.boxes, [[4, 3, 6, 7]]) and list(a.labels) == [1] and len(b.labels) == 0


def test_polygon_rows(tmp_path):
    p = tmp_path / "a.txt"
    p.write_text("0 0.1 0.1 0.5 0.1 0.5 0.6\n")
    boxes, labels, segs, kps = read_label_file(p, 20, 10, 2, Problems(True))
    assert np.allclose(boxes, [[2, 1, 10, 6]]) and segs == [[[2.0, 1.0, 10.0, 1.0, 10.0, 6.0]]]


@pytest.mark.parametrize("row, words", [
    ("5 0.5 0.5 0.1 0.1", "unknown class 5"),
    ("0 0.5 0.5 -0.1 0.1", "negative size"),
    ("0 0.9 0.5 0.5 0.1", "outside"),
    ("0 0.5 0.5 0.1", "4 values"),
    ("cat 0.5 0.5 0.1 0.1", "expected numbers"),
    ("0 nan 0.5 0.1 0.1", "finite"),
])
def test_bad_rows_named_with_line(tmp_path, row, words):
    p = tmp_path / "a.txt"
    p.write_text(f"0 0.5 0.5 0.2 0.2\n{row}\n")
    with pytest.raises(FileFormatError, match=words) as e:
        read_label_file(p, 100, 100, 2, Problems(True))
    assert "a.txt:2" in str(e.value)
    with pytest.warns(DataWarning, match=words):
        boxes, labels, _, _ = read_label_file(p, 100, 100, 2, Problems(False))
    assert len(labels) == 1


def test_yaml_errors(tmp_path):
    y = tmp_path / "d.yaml"
    y.write_text("path: nowhere\ntrain: images\nnames: [a]\n")
    with pytest.raises(MissingFileError, match="not a folder"):
        read_yolo(y)
    (tmp_path / "images").mkdir()
    y.write_text("train: images\nnames: [a]\nnc: 3\n")
    with pytest.raises(FileFormatError, match="nc is 3"):
        read_yolo(y)
    y.write_text("train: missing\nnames: [a]\n")
    with pytest.raises(MissingFileError, match="missing"):
        read_yolo(y)
    y.write_text("a: &a [x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a]\n"
                 "c: &c [*b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c]\n"
                 "train: images\nnames: [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n")
    with pytest.raises(FileFormatError, match="plain name"):
        read_yolo(y)
    y.write_text("train: [images\n")
    with pytest.raises(FileFormatError, match="not a readable YAML"):
        read_yolo(y)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzzed_label_files_give_only_cnnkit_errors(tmp_path, data):
    img = ImageAnn("a.png", 30, 20, np.array([[0, 0, 5, 5], [2, 3, 30, 20]], np.float32), np.array([0, 1]),
                   keypoints=np.ones((2, 2, 3), np.float32))
    p = tmp_path / "a.txt"
    p.write_bytes(mutate(yolo_lines(img).encode(), data.draw))
    kpt = data.draw(st.sampled_from([None, [2, 3], [2, 2]]))
    out = only_cnnkit_errors(read_label_file, p, 30, 20, 2, Problems(data.draw(st.booleans())), kpt)
    if out is not None and not isinstance(out, Exception):
        boxes, labels, segs, kps = out
        assert boxes.shape == (len(labels), 4) and np.all(boxes[:, 2:] > boxes[:, :2])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzzed_yaml_gives_only_cnnkit_errors(tmp_path, data):
    (tmp_path / "images" / "train").mkdir(parents=True, exist_ok=True)
    y = tmp_path / "d.yaml"
    y.write_bytes(mutate(b"path: .\ntrain: images/train\nval: images/train\nnames:\n  0: cat\n  1: dog\n", data.draw))
    only_cnnkit_errors(read_yolo, y)


def test_pose_dataset_flip_pairs(tmp_path, run_cli):
    from cnnkit.data.detection_files import load_detection

    code, _, err = run_cli("data", "scenes", "--out", tmp_path, "--format", "yolo", "--n", 4, "--size", 32,
                           "--keypoints")
    assert code == 0, err
    ds = load_detection(tmp_path / "dataset.yaml")["train"]
    assert ds.flip_pairs == ((0, 1), (2, 3)) and ds[0][1]["keypoints"].shape[1:] == (4, 2)
    y = tmp_path / "dataset.yaml"
    y.write_text(y.read_text().replace("- 1\n- 0\n", "- 0\n- 0\n"))
    with pytest.raises(FileFormatError, match="flip_idx"):
        read_yolo(y)


def test_byte_order_mark_and_crlf(tmp_path):
    p = tmp_path / "a.txt"
    p.write_bytes("\ufeff0 0.5 0.5 0.2 0.2\r\n1 0.25 0.25 0.1 0.1\r\n".encode())
    boxes, labels, _, _ = read_label_file(p, 100, 100, 2, Problems(True))
    assert list(labels) == [0, 1] and np.allclose(boxes[0], [40, 40, 60, 60])


def test_a_split_without_any_label_file_is_reported(tmp_path):
    from cnnkit.data.sources import DataWarning

    write_pngs(tmp_path / "images" / "train", [ImageAnn("a.png", 10, 10)])
    (tmp_path / "lables" / "train").mkdir(parents=True)  # misspelt
    (tmp_path / "lables" / "train" / "a.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    y = tmp_path / "d.yaml"
    y.write_text("train: images/train\nnames: [a]\n")
    with pytest.warns(DataWarning, match="none of its 1 images has a label file"):
        ann = read_yolo(y)
    assert len(ann.images) == 1 and len(ann.images[0].labels) == 0
    with pytest.raises(FileFormatError, match="labels/train/a.txt"):
        read_yolo(y, strict=True)

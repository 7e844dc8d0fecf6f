"""`cnnkit data scenes` writes every format; reading the files back gives the scenes' annotations exactly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cnnkit.data.detection_files import detect_format, load_detection
from cnnkit.data.scenes import SceneConfig, make_scene


@pytest.mark.parametrize("fmt", ["coco", "yolo", "voc", "labelpng"])
def test_cli_writes_and_reads_back(tmp_path, run_cli, fmt):
    out = tmp_path / fmt
    args = ["data", "scenes", "--out", out, "--format", fmt, "--train", 4, "--val", 2, "--test", 2, "--size", 48]
    if fmt == "yolo":
        args.append("--keypoints")
    code, stdout, err = run_cli(*args)
    assert code == 0, err
    assert "wrote 8 scenes" in stdout
    target = out / "dataset.yaml" if fmt == "yolo" else out
    assert detect_format(target) == fmt
    parts = load_detection(target, view="semantic" if fmt == "labelpng" else "detection", strict=True)
    assert {k: len(v) for k, v in parts.items()} == {"train": 4, "val": 2, "test": 2}
    cfg = SceneConfig(size=48)
    for ds in parts.values():
        for i in range(len(ds)):
            path = ds.source.path(i) if hasattr(ds.source, "path") else ds.source.pairs[i][0]
            scene = make_scene(cfg, int(Path(path).stem))
            item = ds.raw(i)
            assert np.array_equal(item.image, scene.image)
            if fmt == "labelpng":
                assert np.array_equal(item.semantic, scene.semantic)
                continue
            assert np.array_equal(item.boxes, scene.boxes) and np.array_equal(item.labels, scene.labels)
            if fmt == "coco":
                assert np.array_equal(item.masks, scene.masks)
            if fmt in ("coco", "yolo"):
                assert np.array_equal(item.keypoints, scene.landmarks)
    code, stdout, _ = run_cli("data", "check", target)
    assert code == 0 and "no problems found" in stdout


def test_cli_errors_are_one_line(tmp_path, run_cli):
    code, _, err = run_cli("data", "check", tmp_path / "missing")
    assert code == 2 and err.count("\n") == 1 and "not found" in err
    code, _, err = run_cli("data", "scenes", "--out", tmp_path, "--classes", "circle,hexagon")
    assert code == 2 and "hexagon" in err
    bad = tmp_path / "ds"
    (bad / "images" / "train").mkdir(parents=True)
    (bad / "labels" / "train").mkdir(parents=True)
    from PIL import Image

    Image.new("RGB", (10, 10)).save(bad / "images" / "train" / "a.png")
    (bad / "labels" / "train" / "a.txt").write_text("7 0.5 0.5 0.1 0.1\n")
    (bad / "dataset.yaml").write_text("train: images/train\nnames: [a, b]\n")
    code, out, err = run_cli("data", "check", bad, "--strict")
    assert code == 2 and "a.txt:1: unknown class 7" in err and err.count("\n") == 1
    code, out, err = run_cli("data", "check", bad)
    assert code == 0 and "unknown class 7" in out and "1 problem(s) skipped" in out


def test_show_draws_a_picture(tmp_path, run_cli):
    code, out, err = run_cli("data", "show", "scenes", "-o", tmp_path / "s.png", "--n", 2)
    assert code == 0, err
    assert (tmp_path / "s.png").stat().st_size > 1000


def test_convert_between_formats_keeps_boxes(tmp_path, run_cli):
    """coco -> yolo -> voc -> coco: every box and label survives, splits too; masks dropped and said so."""
    from cnnkit.data.annotation_convert import read_annotations

    code, _, err = run_cli("data", "scenes", "--out", tmp_path / "coco", "--format", "coco", "--train", 3,
                           "--val", 2, "--test", 0, "--size", 40)
    assert code == 0, err
    steps = [("yolo", tmp_path / "coco"), ("voc", tmp_path / "yolo" / "dataset.yaml"), ("coco", tmp_path / "voc")]
    for fmt, src in steps:
        code, out, err = run_cli("data", "convert", src, "--to", fmt, "--out", tmp_path / fmt.replace("coco", "back"))
        assert code == 0, err
        if fmt == "yolo":
            assert "masks dropped" in out
    first = read_annotations(tmp_path / "coco")
    last = read_annotations(tmp_path / "back")
    assert first.splits == last.splits == {"train": [0, 1, 2], "val": [3, 4]}
    for a, b in zip(first.images, last.images, strict=True):
        assert Path(a.file).name == Path(b.file).name
        assert np.array_equal(a.boxes, b.boxes) and np.array_equal(a.labels, b.labels)
        assert Path(a.file).read_bytes() == Path(b.file).read_bytes()
    code, _, err = run_cli("data", "convert", tmp_path / "coco", "--to", "labelpng", "--out", tmp_path / "x")
    assert code == 2

"""Label PNGs: index/grey/RGB round trips, palettes, unknown colours named, fuzzed files."""

from __future__ import annotations

import numpy as np
import pytest
from annotation_strategies import mutate, only_cnnkit_errors
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from cnnkit.data.labelpng import read_class_colours, read_label_png, voc_palette, write_label_png
from cnnkit.errors import FileFormatError, InputError

_SETTINGS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def test_voc_palette_known_colours():
    pal = voc_palette()
    # Pascal VOC: background black, aeroplane (128, 0, 0), bicycle (0, 128, 0), person (15) (192, 128, 128)
    assert tuple(pal[0]) == (0, 0, 0) and tuple(pal[1]) == (128, 0, 0) and tuple(pal[2]) == (0, 128, 0)
    assert tuple(pal[15]) == (192, 128, 128) and tuple(pal[255]) == (224, 224, 192)


@_SETTINGS
@given(seed=st.integers(0, 2**31), h=st.integers(1, 30), w=st.integers(1, 30), k=st.integers(1, 21))
def test_index_png_round_trip(tmp_path, seed, h, w, k):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, k + 1, (h, w))
    labels[rng.random((h, w)) < 0.1] = 255
    write_label_png(tmp_path / "m.png", labels)
    assert np.array_equal(read_label_png(tmp_path / "m.png"), labels)
    # the same mask saved as RGB colours reads back through the palette
    Image.fromarray(voc_palette()[labels]).save(tmp_path / "rgb.png")
    pal = {tuple(int(v) for v in voc_palette()[i]): i for i in [*range(k + 1), 255]}
    assert np.array_equal(read_label_png(tmp_path / "rgb.png", palette=pal), labels)


def test_grey_png_and_unknown_colour(tmp_path):
    Image.fromarray(np.array([[0, 1], [2, 3]], np.uint8), mode="L").save(tmp_path / "g.png")
    assert read_label_png(tmp_path / "g.png").tolist() == [[0, 1], [2, 3]]
    rgb = np.zeros((4, 5, 3), np.uint8)
    rgb[2, 3] = (10, 20, 30)
    Image.fromarray(rgb).save(tmp_path / "c.png")
    with pytest.raises(FileFormatError, match=r"c.png: colour \(10, 20, 30\) at pixel \(x=3, y=2\)"):
        read_label_png(tmp_path / "c.png", palette=[(0, 0, 0), (128, 0, 0)])
    with pytest.raises(FileFormatError, match="needs a palette"):
        read_label_png(tmp_path / "c.png")
    with pytest.raises(InputError):
        write_label_png(tmp_path / "x.png", np.full((2, 2), 300))


def test_class_dict_csv(tmp_path):
    (tmp_path / "class_dict.csv").write_text("name,r,g,b\nsky,128,128,128\nroad,128,64,128\n")
    names, colours = read_class_colours(tmp_path / "class_dict.csv")
    assert names == ["sky", "road"] and colours == {(128, 128, 128): 0, (128, 64, 128): 1}
    (tmp_path / "bad.csv").write_text("sky,1,2,3\nroad,1,2,3\n")
    with pytest.raises(FileFormatError, match="two classes"):
        read_class_colours(tmp_path / "bad.csv")


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzzed_pngs_give_only_cnnkit_errors(tmp_path, data):
    write_label_png(tmp_path / "ok.png", np.arange(12).reshape(3, 4))
    p = tmp_path / "f.png"
    p.write_bytes(mutate((tmp_path / "ok.png").read_bytes(), data.draw))
    pal = data.draw(st.sampled_from([None, voc_palette()[:16]]))
    out = only_cnnkit_errors(read_label_png, p, palette=pal)
    assert isinstance(out, (np.ndarray, FileFormatError))


def _seg_folder(root, n=3, size=(6, 8)):
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    for i in range(n):
        Image.fromarray(np.zeros((*size, 3), np.uint8)).save(root / "images" / f"{i}.png")
        write_label_png(root / "labels" / f"{i}.png", np.full(size, i % 3))
    (root / "classes.txt").write_text("background\nsky\nroad\n")


def test_label_png_folder_and_its_errors(tmp_path):
    import torch

    from cnnkit.data.detection_files import load_detection
    from cnnkit.data.sources import DataWarning
    from cnnkit.errors import MissingFileError

    _seg_folder(tmp_path / "ok")
    ds = load_detection(tmp_path / "ok", view="semantic", val_fraction=0, test_fraction=0)["train"]
    assert ds.semantic_classes == ["background", "sky", "road"]
    assert [int(ds[i][1][0, 0]) for i in range(3)] == [0, 1, 2] and ds[0][1].dtype == torch.int64

    _seg_folder(tmp_path / "bad")
    (tmp_path / "bad" / "labels" / "1.png").unlink()                                   # a missing mask
    write_label_png(tmp_path / "bad" / "labels" / "2.png", np.zeros((5, 8)))          # a mask of another size
    with pytest.raises(MissingFileError, match="1.png"):
        load_detection(tmp_path / "bad", view="semantic", strict=True)
    with pytest.warns(DataWarning):
        parts = load_detection(tmp_path / "bad", view="semantic", val_fraction=0, test_fraction=0)
    assert len(parts["train"]) == 1

    _seg_folder(tmp_path / "high")
    write_label_png(tmp_path / "high" / "labels" / "0.png", np.full((6, 8), 7))       # class 7 of 3
    ds = load_detection(tmp_path / "high", view="semantic", val_fraction=0, test_fraction=0)["train"]
    with pytest.raises(FileFormatError, match="class id 7 at pixel"):
        ds[0]
    (tmp_path / "high" / "classes.txt").unlink()
    with pytest.raises(MissingFileError, match="classes.txt"):
        load_detection(tmp_path / "high", view="semantic")

"""Pascal VOC XML: exact round trips, bad objects named, DTDs refused, fuzzed files give only cnnkit errors."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from annotation_strategies import CLASSES, image_anns, mutate, only_cnnkit_errors, same_annotations, write_pngs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cnnkit.data.annotations import Annotations, ImageAnn
from cnnkit.data.sources import DataWarning
from cnnkit.data.voc import read_voc, voc_xml, write_voc
from cnnkit.errors import FileFormatError, MissingFileError

_SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@_SETTINGS
@given(images=image_anns(crowd=True))
def test_round_trip_is_exact(tmp_path_factory, images):
    d = tmp_path_factory.mktemp("voc")
    ann = Annotations(list(CLASSES), images, d / "JPEGImages", splits={"train": list(range(len(images)))})
    write_pngs(d / "JPEGImages", images)
    write_voc(ann, d)
    back = read_voc(d, strict=True)  # classes from the classes.txt the writer leaves
    same_annotations(ann, back, crowd=True)
    assert back.splits == {"train": list(range(len(images)))}


def test_one_based_inclusive_coordinates():
    """VOC's xmin=1..xmax=W covers the whole image; in memory that is 0..W."""
    img = ImageAnn("a.png", 30, 20, np.array([[0, 0, 30, 20]], np.float32), np.array([0]))
    text = voc_xml(img, ["cat"]).decode()
    assert "<xmin>1</xmin>" in text and "<xmax>30</xmax>" in text and "<ymax>20</ymax>" in text


def _xml(tmp_path, objects: str, name="x.xml", size="<size><width>30</width><height>20</height></size>"):
    (tmp_path / "JPEGImages").mkdir(exist_ok=True)
    (tmp_path / "Annotations").mkdir(exist_ok=True)
    write_pngs(tmp_path / "JPEGImages", [ImageAnn("x.png", 30, 20)])
    p = tmp_path / "Annotations" / name
    p.write_text(f"<annotation><filename>x.png</filename>{size}{objects}</annotation>")
    return p


def _obj(name, box):
    return (f"<object><name>{name}</name><bndbox><xmin>{box[0]}</xmin><ymin>{box[1]}</ymin>"
            f"<xmax>{box[2]}</xmax><ymax>{box[3]}</ymax></bndbox></object>")


@pytest.mark.parametrize("obj, words", [
    (_obj("cat", (1, 1, 40, 5)), "outside the 30x20 image"),
    (_obj("cat", (9, 1, 3, 5)), "negative size"),
    (_obj("cow", (1, 1, 3, 5)), "unknown class 'cow'"),
    (_obj("cat", ("a", 1, 3, 5)), "numeric"),
    ("<object><bndbox/></object>", "no <name>"),
])
def test_bad_objects_named(tmp_path, obj, words):
    _xml(tmp_path, _obj("cat", (1, 1, 5, 5)) + obj)
    with pytest.raises(FileFormatError, match=words) as e:
        read_voc(tmp_path, classes=["cat", "dog"], strict=True)
    assert "x.xml: object 2" in str(e.value)
    with pytest.warns(DataWarning, match=words):
        back = read_voc(tmp_path, classes=["cat", "dog"])
    assert len(back.images[0].labels) == 1


def test_missing_image_malformed_and_dtd(tmp_path):
    p = _xml(tmp_path, _obj("cat", (1, 1, 5, 5)))
    (tmp_path / "JPEGImages" / "x.png").unlink()
    with pytest.raises(MissingFileError, match="x.png not found"):
        read_voc(tmp_path, strict=True)
    p.write_text("<annotation><filename>x.png</filename")
    with pytest.raises(FileFormatError, match="malformed XML"):
        read_voc(p, strict=True, check_images=False)
    bomb = ('<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>'
            "<annotation><filename>&lol2;</filename></annotation>")
    p.write_text(bomb)
    with pytest.raises(FileFormatError, match="DTD or entities"):
        read_voc(p, strict=True, check_images=False)
    with pytest.warns(DataWarning, match="DTD"):
        assert read_voc(p, check_images=False).images == []


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzzed_files_give_only_cnnkit_errors(tmp_path, data):
    img = ImageAnn("x.png", 30, 20, np.array([[0, 0, 5, 5], [2, 3, 30, 20]], np.float32), np.array([0, 1]))
    p = tmp_path / "f.xml"
    p.write_bytes(mutate(voc_xml(img, ["cat", "dog"]), data.draw))
    out = only_cnnkit_errors(read_voc, p, check_images=False, strict=data.draw(st.booleans()))
    assert isinstance(out, (Annotations, FileFormatError))


def test_writer_is_atomic(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ann = Annotations(["cat"], [ImageAnn("a.png", 5, 5, np.array([[0, 0, 2, 2]], np.float32), np.array([0]))])
        write_voc(ann, tmp_path)
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["a.xml", "classes.txt"]

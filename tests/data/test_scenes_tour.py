"""The tour's scenes section runs in quick mode, draws its pictures and reports exact round trips."""

from PIL import Image


def test_tour_scenes_section_quick(tmp_path):
    from cnnkit.tour import run_tour

    index, failed = run_tour(tmp_path, only=["s090_scenes"], quick=True)
    assert failed == []
    pictures = sorted(tmp_path.glob("scenes-*.png"))
    assert len(pictures) == 3
    for p in pictures:
        with Image.open(p) as im:
            assert im.size[0] > 300
    text = index.read_text()
    assert text.count("10/10") == 4  # every format read back identical


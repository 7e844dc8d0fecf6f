"""The scratch tour section runs in quick mode and writes its picture and tables."""

from cnnkit.tour import run_tour


def test_scratch_tour_section_quick(tmp_path):
    index, failed = run_tour(tmp_path, only=["s010_scratch"], quick=True)
    assert failed == []
    page = index.read_text()
    assert "Convolution from scratch, checked against PyTorch" in page
    assert "F.conv_transpose2d" in page and "37 x 37 x 10" in page and "48,120" in page
    pictures = list(tmp_path.glob("*padding-stride.png"))
    assert len(pictures) == 1 and pictures[0].stat().st_size > 10_000

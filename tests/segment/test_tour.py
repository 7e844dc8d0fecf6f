"""The U-Net tour section runs in quick mode: the transposed-convolution picture agrees with scratch and torch,
both networks train, every figure is written and the prose follows the numbers."""

from cnnkit.tour import run_tour
from cnnkit.tour.sections.s120_unet import transposed_example


def test_transposed_example_matches_scratch_and_torch():
    import numpy as np

    a, w, stamps, full, cropped, scratch, torch_out = transposed_example()
    assert full.shape == (5, 5) and cropped.shape == (4, 4)
    np.testing.assert_allclose(cropped, scratch)
    np.testing.assert_allclose(cropped, torch_out)
    assert full[2, 2] == a[0, 0] * w[2, 2] + a[0, 1] * w[2, 0] + a[1, 0] * w[0, 2] + a[1, 1] * w[0, 0]


def test_unet_tour_section_quick(tmp_path):
    index, failed = run_tour(tmp_path, only=["s120_unet"], quick=True)
    assert failed == []
    page = index.read_text()
    assert "equals both" in page and "unet_small_noskip" in page and "quick mode" in page
    for name in ("transposed", "curves", "predictions", "boundary"):
        assert len(list(tmp_path.glob(f"*-{name}.png"))) == 1, name

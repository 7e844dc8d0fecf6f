"""`cnnkit augment` and the tour section."""

import numpy as np
from PIL import Image

from cnnkit.io import read_image, save_image


def _photo(tmp_path):
    rng = np.random.default_rng(0)
    return save_image(tmp_path / "in.png", rng.integers(0, 256, (40, 50, 3), dtype=np.uint8))


def test_augment_writes_a_grid(run_cli, tmp_path):
    out = tmp_path / "grid.png"
    code, stdout, err = run_cli("augment", _photo(tmp_path), "-o", out, "--ops", "flip,rotate=30", "--n", "2",
                                "--size", "32", "--seed", "3")
    assert code == 0, err
    assert "3 rows x 2 samples" in stdout
    img = read_image(out)
    assert img.shape[0] > 100 and img.shape[1] > 100


def test_augment_list(run_cli):
    code, out, _ = run_cli("augment", "--list")
    assert code == 0 and "elastic" in out and "pca" in out


def test_augment_bad_inputs_are_one_line(run_cli, tmp_path):
    code, _, err = run_cli("augment", tmp_path / "missing.png", "-o", tmp_path / "g.png")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "missing.png" in err
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    code, _, err = run_cli("augment", broken, "-o", tmp_path / "g.png")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "broken.png" in err
    code, _, err = run_cli("augment", _photo(tmp_path), "--ops", "flip,twirl")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "twirl" in err and "rotate" in err and "elastic" in err  # lists the known ops
    assert not (tmp_path / "g.png").exists()


def test_tour_section_quick(tmp_path):
    from cnnkit.tour import run_tour

    index, failed = run_tour(tmp_path, only=["s050_augment"], quick=True)
    assert failed == []
    for name in ("data-augmentation-grid.png", "data-augmentation-pca.png"):
        with Image.open(tmp_path / name) as im:
            assert im.size[0] > 200
    assert "data-augmentation-grid.png" in index.read_text()

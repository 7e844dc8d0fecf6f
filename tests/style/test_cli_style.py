"""`cnnkit style` end to end on a small random VGG: outputs, notes on changed inputs, one-line errors."""

from __future__ import annotations

import numpy as np
from PIL import Image

SMALL = ["--model", "vgg11", "--size", "32", "--steps", "3", "--content-layer", "relu3_1",
         "--style-layers", "relu1_1,relu2_1", "--quiet"]


def write(path, array):
    Image.fromarray(array).save(path)
    return str(path)


def test_style_writes_the_image_frames_and_reports(tmp_path, run_cli):
    rng = np.random.default_rng(0)
    content = write(tmp_path / "c.png", rng.integers(0, 256, (40, 48, 3), dtype=np.uint8))
    gray = write(tmp_path / "g.png", rng.integers(0, 256, (40, 48), dtype=np.uint8))
    style = write(tmp_path / "s.png", rng.integers(0, 256, (64, 30, 3), dtype=np.uint8))
    out = tmp_path / "out.png"
    code, stdout, stderr = run_cli("style", content, style, "-o", out, *SMALL, "--frames-every", "1")
    assert code == 0, stderr
    assert Image.open(out).size == (32, 27)
    assert "style image 1 resized from 30x64" in stdout and "random weights" in stdout
    assert "final costs: J_content" in stdout
    assert sorted(p.name for p in (tmp_path / "out_frames").iterdir()) == ["00001.png", "00002.png", "00003.png"]
    assert (tmp_path / "out_strip.png").exists() and (tmp_path / "out.gif").exists()
    code, stdout, _ = run_cli("style", gray, "builtin:brick", "-o", tmp_path / "o2.png", *SMALL, "--preserve-colors")
    assert code == 0 and "content image is grayscale: converted" in stdout and "colours preserved" in stdout


def test_style_bad_input_is_one_line(tmp_path, run_cli):
    rng = np.random.default_rng(0)
    content = write(tmp_path / "c.png", rng.integers(0, 256, (40, 48, 3), dtype=np.uint8))
    code, out, err = run_cli("style", content, content, "-o", tmp_path / "o.png", *SMALL, "--content-layer", "conv9")
    assert code == 2 and "unknown layer 'conv9'" in err and "available: conv1_1, relu1_1" in err
    assert len(err.strip().splitlines()) == 1
    code, out, err = run_cli("style", content, content, "-o", tmp_path / "o.png", *SMALL[:-1], "--size", "8",
                             "--style-layers", "relu5_1")
    assert code == 2 and "too small" in err and len(err.strip().splitlines()) == 1
    code, out, err = run_cli("style", content, tmp_path / "missing.png", "-o", tmp_path / "o.png", *SMALL)
    assert code == 2 and "missing.png" in err
    code, out, err = run_cli("style", content, "builtin:nope", "-o", tmp_path / "o.png", *SMALL)
    assert code == 2 and "swirl" in err

"""`cnnkit viz` sub-commands on a zoo model and on a cnnkit model file."""

from __future__ import annotations

import numpy as np
from PIL import Image


def test_viz_commands_write_pictures(tmp_path, run_cli):
    from cnnkit.checkpoint import save_model_file
    from cnnkit.models import create_model

    model = create_model("lenet5_modern", num_classes=10, in_chans=1)
    ckpt = save_model_file(tmp_path / "lenet.safetensors", model, {
        "model": "lenet5_modern", "model_kwargs": {"num_classes": 10, "in_chans": 1}, "input_size": [1, 32, 32],
        "mean": [0.5], "std": [0.25], "classes": [str(i) for i in range(10)]})
    image = tmp_path / "img.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 50, 3), dtype=np.uint8)).save(image)
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(3):
        pixels = np.random.default_rng(i).integers(0, 256, (40, 40, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"{i}.png")

    code, out, err = run_cli("viz", "filters", ckpt, "-o", tmp_path / "f.png")
    assert code == 0 and "6 filters" in out and (tmp_path / "f.png").exists(), err
    code, out, err = run_cli("viz", "gradcam", ckpt, image, "-o", tmp_path / "g.png")
    assert code == 0 and "Grad-CAM of class" in out and (tmp_path / "g.png").exists(), err
    code, out, err = run_cli("viz", "maps", ckpt, image, "--layer", "c1", "-o", tmp_path / "m.png")
    assert code == 0 and "maps of c1" in out, err
    code, out, err = run_cli("viz", "units", ckpt, "--layer", "c3", "--images", folder, "--crops", "6",
                             "--crop-size", "32", "--top", "3", "-o", tmp_path / "u.png")
    assert code == 0 and "receptive field" in out and (tmp_path / "u.png").exists(), err
    code, out, err = run_cli("viz", "maximize", ckpt, "--class", "3", "--size", "32", "--steps", "5",
                             "-o", tmp_path / "x.png")
    assert code == 0 and "class 3 (3)" in out, err
    code, out, err = run_cli("viz", "maps", ckpt, image, "--layer", "nope", "-o", tmp_path / "m.png")
    assert code == 2 and "unknown layer 'nope'" in err and "available:" in err

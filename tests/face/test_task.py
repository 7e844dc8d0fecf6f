"""The metric-learning task: group items, collation, loss, meter; `cnnkit train` and `evaluate` on a tiny run."""

from __future__ import annotations

import json

import numpy as np
import torch

from cnnkit.face.data import IdentityGroups, load_faces
from cnnkit.tasks import get_task


def test_groups_collate_loss_and_meter():
    task = get_task("metric_learning")
    ds = load_faces("val", identities=30, images_per_identity=6)
    groups = IdentityGroups(ds, k=4)
    assert not hasattr(groups, "classes") and groups.input_size == [3, 32, 32]
    groups.reseed(5)
    a = groups[3]
    groups.reseed(5)
    b = groups[3]
    assert torch.equal(a[0], b[0]) and a[0].shape == (4, 3, 32, 32) and set(a[1].tolist()) == {3}
    x, y = task.collate([groups[i] for i in range(8)])
    assert x.shape == (32, 3, 32, 32) and y.shape == (32,)
    emb = torch.nn.functional.normalize(torch.randn(32, 8), dim=1)
    loss, parts = task.loss(emb, y)
    assert loss.item() > 0 and parts == {}
    assert 0 < task.train_stats(emb, y)["active"] <= 32
    meter = task.meter(None, ds)
    x1, y1 = task.collate([ds[i] for i in range(len(ds))])
    # embeddings that are the identity one-hot: one-shot is perfect
    meter.update(torch.nn.functional.one_hot(y1, 30).float(), y1)
    m = meter.compute()
    assert m["oneshot_top1_20way"] == 1.0 and m["oneshot_top1_5way"] == 1.0 and m["n"] == len(ds)


def test_train_and_evaluate_cli(tmp_path, capsys, monkeypatch):
    import cnnkit.face.data as data
    from cnnkit.cli.main import main

    small = {"train": 40, "val": 25, "test": 25}
    orig = data.load_faces
    monkeypatch.setattr(data, "load_faces",
                        lambda split, **kw: orig(split, identities=small[split], images_per_identity=4,
                                                 image_size=kw.get("image_size")))
    monkeypatch.setattr("cnnkit.face.task.load_faces", data.load_faces)
    out = tmp_path / "run"
    code = main(["train", "--model", "face_embedder_small", "--data", "faces", "--out", str(out), "--epochs", "1",
                 "--batch-size", "8", "--no-progress"])
    assert code == 0 and (out / "best.safetensors").is_file()
    # the data line counts images and identities, not only the K-image groups an epoch draws
    assert "faces: 160 (40 identities, drawn as 40 groups of 4 an epoch) train, 100 val" in capsys.readouterr().out
    code = main(["evaluate", str(out / "best.safetensors"), "--data", "faces", "--json"])
    res = json.loads(capsys.readouterr().out)
    assert code == 0 and 0 <= res["oneshot_top1_20way"] <= 1 and res["task"] == "metric_learning"
    assert np.isfinite(res["loss"])

"""`cnnkit data check` on damaged files: exit 0 (problems skipped and listed) or 2 with one line, never a crash."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest
from annotation_strategies import mutate
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

_SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    from cnnkit.data.scene_export import export_scenes
    from cnnkit.data.scenes import SceneConfig

    root = tmp_path_factory.mktemp("exported")
    for fmt in ("coco", "yolo", "voc"):
        export_scenes(root / fmt, fmt, counts={"train": 3, "val": 1}, config=SceneConfig(size=32), progress=False)
    return root


def _check(run_cli, target, strict):
    args = ["data", "check", target] + (["--strict"] if strict else [])
    code, out, err = run_cli(*args)
    assert code in (0, 2), (code, err)
    if code == 2:
        assert err.count("\n") == 1 and "internal error" not in err
    return code


@_SETTINGS
@given(data=st.data())
def test_damaged_files_through_the_cli(tmp_path, exported, run_cli, data):
    fmt = data.draw(st.sampled_from(["coco", "yolo", "voc"]))
    work = Path(tempfile.mkdtemp(dir=tmp_path)) / fmt
    shutil.copytree(exported / fmt, work)
    victim = {
        "coco": work / "annotations" / "instances_train.json",
        "yolo": data.draw(st.sampled_from([work / "dataset.yaml", work / "labels" / "train" / "0000000.txt"])),
        "voc": work / "Annotations" / "0000001.xml",
    }[fmt]
    victim.write_bytes(mutate(victim.read_bytes(), data.draw))
    _check(run_cli, work / "dataset.yaml" if fmt == "yolo" else work, data.draw(st.booleans()))

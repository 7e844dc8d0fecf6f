"""`cnnkit coco-eval`: the 12 lines, --json names, one-line errors with exit 2, and no torch on this path."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from cocodata import pycocotools_eval, random_coco


@pytest.fixture
def files(tmp_path):
    gt, results = random_coco(11, n_images=30)
    g, r = tmp_path / "gt.json", tmp_path / "res.json"
    g.write_text(json.dumps(gt))
    r.write_text(json.dumps(results))
    return gt, results, g, r


def test_prints_cocoeval_lines_and_json(run_cli, files):
    gt, results, g, r = files
    code, out, err = run_cli("coco-eval", g, r)
    assert code == 0, err
    _, printed = pycocotools_eval(gt, results)
    assert out.splitlines() == printed.splitlines()[-12:]
    code, out, _ = run_cli("coco-eval", g, r, "--json")
    data = json.loads(out)
    assert code == 0 and list(data)[:12] == ["map", "map50", "map75", "map_small", "map_medium", "map_large",
                                             "mar_1", "mar_10", "mar_100", "mar_small", "mar_medium", "mar_large"]
    assert f"{data['map']:0.3f}" in printed.strip().splitlines()[-12]
    assert set(data["per_class"]) == {c["name"] for c in gt["categories"]}


def test_bad_inputs_one_line_exit_2(run_cli, files, tmp_path):
    gt, results, g, r = files
    cases = {}
    truncated = tmp_path / "trunc.json"
    truncated.write_text(r.read_text()[: len(r.read_text()) // 2])
    cases["not valid JSON"] = (g, truncated)
    cases["does not exist"] = (g, tmp_path / "missing.json")
    unknown_img = tmp_path / "unknown_img.json"
    unknown_img.write_text(json.dumps(results + [dict(results[0], image_id=987654321)]))
    cases["image id 987654321"] = (g, unknown_img)
    unknown_cat = tmp_path / "unknown_cat.json"
    unknown_cat.write_text(json.dumps([dict(results[0], category_id=4242)]))
    cases["category id 4242"] = (g, unknown_cat)
    not_list = tmp_path / "obj.json"
    not_list.write_text(json.dumps({"a": 1}))
    cases["not COCO results"] = (g, not_list)
    cases["not COCO ground truth"] = (r, r)
    missing_field = tmp_path / "nofield.json"
    missing_field.write_text(json.dumps([{"image_id": results[0]["image_id"], "score": 1.0, "category_id": 1}]))
    cases["malformed field"] = (g, missing_field)
    for expected, (a, b) in cases.items():
        code, out, err = run_cli("coco-eval", a, b)
        assert code == 2, (expected, err)
        assert expected in err and len(err.strip().splitlines()) == 1, err
        assert out == ""


def test_coco_eval_does_not_import_torch(files):
    _, _, g, r = files
    code = ("import sys; from cnnkit.cli.main import main; rc = main(['coco-eval', sys.argv[1], sys.argv[2], "
            "'--json']); assert 'torch' not in sys.modules, 'torch was imported'; sys.exit(rc)")
    proc = subprocess.run([sys.executable, "-c", code, str(g), str(r)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["map"] >= 0


def test_segm_iou_type(run_cli, tmp_path):
    from cocodata import random_coco_segm

    gt, results = random_coco_segm(1, n_images=12)
    g, r = tmp_path / "gt.json", tmp_path / "res.json"
    g.write_text(json.dumps(gt))
    r.write_text(json.dumps(results))
    code, out, err = run_cli("coco-eval", g, r, "--iou-type", "segm")
    assert code == 0, err
    _, printed = pycocotools_eval(gt, results, "segm")
    assert out.splitlines() == printed.splitlines()[-12:]

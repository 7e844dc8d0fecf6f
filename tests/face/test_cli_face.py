"""`cnnkit face` end to end on two real photos: enrol, verify, identify, bad input, list without torch."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from cnnkit.cli.main import main


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    import matplotlib.cbook
    import skimage.data

    d = tmp_path_factory.mktemp("faces")
    a = skimage.data.astronaut()
    with Image.open(matplotlib.cbook.get_sample_data("grace_hopper.jpg")) as im:
        g = np.asarray(im.convert("RGB"))
    files = {
        "eileen": a, "grace": g,
        "eileen_altered": (a[20:400, 40:460, ::-1][:, ::-1] * 0.7).astype(np.uint8),  # crop, flip, darker
        "grey": np.full((120, 160, 3), 128, np.uint8),
        "two": np.concatenate([a[:300, 100:350], g[100:400, 130:400]], axis=1),
    }
    paths = {}
    for k, v in files.items():
        paths[k] = str(d / f"{k}.png")
        Image.fromarray(np.ascontiguousarray(v)).save(paths[k])
    return d, paths


def _run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_face_commands(photos, capsys):
    d, p = photos
    db = str(d / "faces.db")
    code, out, _ = _run(capsys, "face", "enroll", "--db", db, "eileen", p["eileen"])
    assert code == 0 and "enrolled eileen: 1 image(s)" in out
    assert _run(capsys, "face", "enroll", "--db", db, "grace", p["grace"])[0] == 0

    code, out, _ = _run(capsys, "face", "verify", "--db", db, "--as", "eileen", p["eileen_altered"], "--json")
    v = json.loads(out)
    assert code == 0 and v["verified"] and v["distance"] < v["threshold"] == 0.6
    code, out, _ = _run(capsys, "face", "verify", "--db", db, "--as", "grace", p["eileen_altered"])
    assert code == 1 and "NOT verified as grace: distance" in out and "> threshold 0.6000" in out

    code, out, _ = _run(capsys, "face", "identify", "--db", db, p["eileen_altered"], p["grey"], "--json")
    res = json.loads(out)
    assert code == 0 and res[0]["identity"] == "eileen" and res[1]["faces"] == 0
    code, out, _ = _run(capsys, "face", "identify", "--db", db, p["eileen_altered"], "--tau", "0.05")
    assert "unknown: nearest is eileen at distance" in out and "> threshold 0.0500" in out

    # bad input: one line, exit 2, never "verified"
    for argv, words in [
        (("verify", "--db", db, "--as", "eileen", p["grey"]), "no face found"),
        (("verify", "--db", db, "--as", "grace", p["two"]), "2 faces found where one is expected"),
        (("verify", "--db", db, "--as", "nobody", p["eileen"]), "'nobody' is not enrolled"),
        (("identify", "--db", db, p["two"]), "--largest"),
    ]:
        code, out, err = _run(capsys, "face", *argv)
        assert code == 2 and words in err and "verified" not in out and len(err.strip().splitlines()) == 1, err
    code, out, _ = _run(capsys, "face", "verify", "--db", db, "--as", "grace", p["two"], "--largest")
    assert code == 0 and "verified as grace" in out

    bad = d / "corrupt.db"
    bad.write_bytes(os.urandom(4096))
    code, _, err = _run(capsys, "face", "identify", "--db", str(bad), p["eileen"])
    assert code == 2 and "not a readable face database" in err

    code, out, _ = _run(capsys, "face", "embed", p["eileen"], "--json")
    emb = json.loads(out)["embeddings"][0]["embedding"]
    assert len(emb) == 128

    code, out, _ = _run(capsys, "face", "remove", "--db", db, "grace")
    assert code == 0 and "removed grace: 1 image(s)" in out

    # list starts without torch
    script = ("import sys; from cnnkit.cli.main import main; code = main(['face', 'list', '--db', sys.argv[1]]); "
              "print('TORCH' if 'torch' in sys.modules else 'NO TORCH'); sys.exit(code)")
    r = subprocess.run([sys.executable, "-c", script, db], capture_output=True, text=True, timeout=60,
                       env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert r.returncode == 0 and "eileen" in r.stdout and "1 identities" in r.stdout and "NO TORCH" in r.stdout


def test_detect_json_and_picture(photos, capsys, tmp_path):
    _, p = photos
    code, out, _ = _run(capsys, "face", "detect", p["two"], "-o", str(tmp_path / "out.png"), "--json")
    faces = json.loads(out)["faces"]
    assert code == 0 and len(faces) == 2 and all(len(f["landmarks"]) == 5 for f in faces)
    assert (tmp_path / "out.png").is_file()


def test_database_of_another_model_refused(photos, capsys, tmp_path):
    from cnnkit.face.database import FaceDatabase, ModelInfo

    _, p = photos
    db = tmp_path / "other.db"
    FaceDatabase(db, ModelInfo("dlib_face_resnet", "someone-elses", 128), create=True).close()
    code, _, err = _run(capsys, "face", "enroll", "--db", str(db), "x", p["eileen"])
    assert code == 2 and "distances between two models mean nothing" in err


def test_threshold_on_an_lfw_layout(photos, capsys, tmp_path):
    """Aligned chips in LFW's folder layout: 2 folds, matched pairs of one person's chips, mismatched across."""
    from cnnkit.face.align import face_chip
    from cnnkit.face.mtcnn import MTCNN

    _, p = photos
    det = MTCNN()
    chips = {}
    for who, key in (("Eileen", "eileen"), ("Grace", "grace")):
        img = np.asarray(Image.open(p[key]).convert("RGB"))
        lm = det.detect(img).landmarks[0]
        (tmp_path / who).mkdir()
        for k, (shift, gain) in enumerate([(0, 1.0), (2, 0.8), (-2, 1.1)], start=1):
            chip = np.clip(face_chip(img, lm + shift) * gain, 0, 255).astype(np.uint8)
            Image.fromarray(chip).save(tmp_path / who / f"{who}_{k:04d}.png")
            chips[who, k] = chip
    (tmp_path / "pairs.txt").write_text("2\t2\nEileen\t1\t2\nGrace\t1\t3\nEileen\t1\tGrace\t2\nGrace\t1\tEileen\t3\n"
                                        "Eileen\t2\t3\nGrace\t2\t3\nEileen\t3\tGrace\t3\nGrace\t2\tEileen\t2\n")
    code, out, _ = _run(capsys, "face", "threshold", str(tmp_path / "pairs.txt"), "--aligned", "--ext", ".png",
                        "--json")
    rep = json.loads(out)
    assert code == 0 and rep["pairs"] == 8 and rep["same"] == 4
    assert rep["eer"] == 0.0 and rep["best_accuracy"] == 1.0 and rep["lfw"]["accuracy"] == 1.0

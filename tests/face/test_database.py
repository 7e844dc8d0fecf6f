"""The enrolment database: search against brute force, atomic enrolment under kill -9, readers beside a
writer, another model refused, corrupt files."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from cnnkit.errors import FileFormatError, InputError, MissingFileError, UnknownNameError
from cnnkit.face.database import FaceDatabase, ModelInfo, nearest_rows

MODEL = ModelInfo("toy", "v1", 8)
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}


def _db(tmp_path, **kw) -> FaceDatabase:
    return FaceDatabase(tmp_path / "faces.db", MODEL, create=True, **kw)


def test_enrol_list_search_remove(tmp_path):
    rng = np.random.default_rng(0)
    with _db(tmp_path) as db:
        assert db.search(rng.normal(size=8)) == [None]
        alice, bob = rng.normal(size=(3, 8)), rng.normal(size=(2, 8))
        assert db.enroll("alice", alice, ["a" * 64]) == 3
        db.enroll("bob", bob)
        assert [(n, c) for n, c, _ in db.identities()] == [("alice", 3), ("bob", 2)]
        m = db.search(bob[1] + 0.01)[0]
        assert m.identity == "bob" and m.distance == pytest.approx(np.linalg.norm(np.full(8, 0.01)), rel=1e-3)
        np.testing.assert_allclose(db.embeddings_of("alice"), alice.astype(np.float32))
        assert db.remove("alice") == 3
        with pytest.raises(UnknownNameError, match="alice"):
            db.remove("alice")
        with pytest.raises(UnknownNameError, match="did you mean bob"):
            db.embeddings_of("bobb")
        with pytest.raises(InputError):
            db.enroll("carol", [np.zeros(5)])


def test_nearest_rows_against_brute_force():
    rng = np.random.default_rng(1)
    mat, q = rng.normal(size=(1000, 16)).astype(np.float32), rng.normal(size=(7, 16)).astype(np.float32)
    d2, idx = nearest_rows(q, mat, block=97)  # blocks that do not divide the rows
    brute = ((q[:, None, :].astype(np.float64) - mat[None]) ** 2).sum(-1)
    np.testing.assert_array_equal(idx, brute.argmin(1))
    np.testing.assert_allclose(d2, brute.min(1), rtol=1e-4)


def test_another_model_is_refused_and_missing_or_corrupt_files_say_so(tmp_path):
    _db(tmp_path).close()
    with pytest.raises(InputError, match="toy .*not of other"):
        FaceDatabase(tmp_path / "faces.db", ModelInfo("other", "v1", 8))
    with pytest.raises(InputError, match="version v1"):
        FaceDatabase(tmp_path / "faces.db", ModelInfo("toy", "v2", 8))
    assert FaceDatabase(tmp_path / "faces.db").model == MODEL  # list/remove: no model needed
    with pytest.raises(MissingFileError, match="enrol someone first"):
        FaceDatabase(tmp_path / "none.db", MODEL)
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(FileFormatError, match="not a readable face database"):
        FaceDatabase(bad, MODEL)


_WRITER = textwrap.dedent("""
    import sys, time, numpy as np
    from cnnkit.face.database import FaceDatabase, ModelInfo
    db = FaceDatabase(sys.argv[1], ModelInfo("toy", "v1", 8))
    def slow():
        for k in range(1000):
            yield np.full(8, float(k))
            if k == 5:
                print("midway", flush=True)
                time.sleep(60)  # killed here, inside the transaction
    db.enroll("mallory", slow())
""")


def test_kill_9_mid_enrolment_leaves_the_previous_state(tmp_path):
    with _db(tmp_path) as db:
        db.enroll("alice", np.ones((2, 8)))
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(tmp_path / "faces.db")], stdout=subprocess.PIPE,
                            text=True, env=ENV)
    try:
        assert proc.stdout.readline().strip() == "midway"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    with FaceDatabase(tmp_path / "faces.db", MODEL) as db:
        assert [(n, c) for n, c, _ in db.identities()] == [("alice", 2)]
        db.enroll("bob", np.zeros((1, 8)))  # and the file still takes writes
        assert len(db) == 3


_READER = textwrap.dedent("""
    import sys, time, numpy as np
    from cnnkit.face.database import FaceDatabase
    db = FaceDatabase(sys.argv[1])
    sizes = set()
    t0 = time.time()
    while time.time() - t0 < 3:
        names, mat = db.matrix()
        assert len(names) == len(mat) and len(mat) % 10 == 0  # only whole enrolments are ever seen
        sizes.add(len(mat))
    print(len(sizes))
""")


def test_two_readers_while_one_writes(tmp_path):
    _db(tmp_path).close()
    path = str(tmp_path / "faces.db")
    readers = [subprocess.Popen([sys.executable, "-c", _READER, path], stdout=subprocess.PIPE, text=True, env=ENV)
               for _ in range(2)]
    with FaceDatabase(path, MODEL) as db:
        t0 = time.time()
        k = 0
        while time.time() - t0 < 4 and any(r.poll() is None for r in readers):
            db.enroll(f"p{k}", np.random.default_rng(k).normal(size=(10, 8)))  # 10 rows per transaction
            k += 1
            time.sleep(0.01)
    outs = [r.communicate(timeout=60) for r in readers]
    assert all(r.returncode == 0 for r in readers), outs
    assert all(int(o[0]) >= 2 for o in outs), outs  # each reader saw the database grow
    assert k >= 5

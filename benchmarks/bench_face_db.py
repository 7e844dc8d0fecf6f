"""Enrolment database: exact nearest-neighbour search over a million 128-d embeddings, and the file's costs.

Search: `cnnkit.face.database.nearest_rows` (blocked ||q||^2 - 2 q.m + ||m||^2) against the obvious reference
(the norm of every difference, `np.linalg.norm(mat - q, axis=1).argmin()`), same queries, same run; printed:
the CPU, milliseconds per query for each, the ratio, and whether the answers agree. File: enrolling --db-rows
rows in one transaction, loading them into the search matrix, and one `FaceDatabase.search`.

    .venv/bin/python benchmarks/bench_face_db.py [--rows 1000000] [--db-rows 100000] [--queries 5]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from cnnkit.face.database import FaceDatabase, ModelInfo, nearest_rows, row_norms  # noqa: E402
from cnnkit.machine import cpu_name  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--db-rows", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=5)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    mat = rng.normal(size=(args.rows, 128)).astype(np.float32)
    q = rng.normal(size=(args.queries, 128)).astype(np.float32)
    print(f"{cpu_name()}; {args.rows:,} x 128 float32 ({mat.nbytes / 2**20:.0f} MiB), {args.queries} queries")
    t0 = time.perf_counter()
    norms = row_norms(mat)  # kept beside the matrix by FaceDatabase: computed once per load
    t_norms = time.perf_counter() - t0
    t0 = time.perf_counter()
    ours = np.array([nearest_rows(qi[None], mat, norms)[1][0] for qi in q])  # one query at a time, as served
    t_ours = (time.perf_counter() - t0) / args.queries
    t0 = time.perf_counter()
    ref = np.array([np.linalg.norm(mat - qi, axis=1).argmin() for qi in q])
    t_ref = (time.perf_counter() - t0) / args.queries
    print(f"search: cnnkit {t_ours * 1e3:.1f} ms/query, reference {t_ref * 1e3:.1f} ms/query, "
          f"ratio {t_ref / t_ours:.1f}x, same answers: {bool((ours == ref).all())}; row norms once: {t_norms:.2f} s")
    batch = rng.normal(size=(100, 128)).astype(np.float32)
    t0 = time.perf_counter()
    nearest_rows(batch, mat, norms)
    print(f"search of 100 queries at once: {(time.perf_counter() - t0) * 1e3:.0f} ms")
    del mat
    with tempfile.TemporaryDirectory() as d:
        emb = rng.normal(size=(args.db_rows, 128)).astype(np.float32)
        with FaceDatabase(Path(d) / "bench.db", ModelInfo("bench", "1", 128), create=True) as db:
            t0 = time.perf_counter()
            db.enroll("person", emb)
            t_enrol = time.perf_counter() - t0
            t0 = time.perf_counter()
            db.matrix()
            t_load = time.perf_counter() - t0
            t0 = time.perf_counter()
            db.search(q[0])
            t_search = time.perf_counter() - t0
        size = (Path(d) / "bench.db").stat().st_size
        print(f"file: {args.db_rows:,} rows enrolled in {t_enrol:.2f} s (one transaction), loaded in {t_load:.2f} s, "
              f"searched in {t_search * 1e3:.1f} ms; {size / 2**20:.0f} MiB")


if __name__ == "__main__":
    main()

"""The enrolment database: identities and their embeddings in one SQLite file.

Each row is one enrolled image: identity, embedding (float32), the model that made it (name and version),
the sha256 of the source image, and the date. An identity may have several rows. The file records the
model it was made with and refuses embeddings, or searches, of another model, since distances between two
models' embeddings mean nothing. Enrolment is one transaction (a crash or kill -9 leaves the previous state);
the file is in WAL mode, so readers keep reading while one process writes.

Search is exact: all embeddings are held as one (N, D) float32 matrix, and the distances of a query to every
row are one matrix product (a million 128-d rows: about 30 ms). The matrix is reloaded only when another
connection has changed the file (SQLite's data_version).

This module imports NumPy and SQLite only (no torch), so `cnnkit face list` starts fast.
"""

from __future__ import annotations

import datetime as _dt
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cnnkit.errors import FileFormatError, InputError, MissingFileError, UnknownNameError

SCHEMA_VERSION = "1"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS embeddings (
    id INTEGER PRIMARY KEY,
    identity TEXT NOT NULL,
    embedding BLOB NOT NULL,
    model_name TEXT NOT NULL,
    model_version TEXT NOT NULL,
    source_sha256 TEXT,
    enrolled TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS embeddings_identity ON embeddings (identity);
"""


@dataclass(frozen=True)
class ModelInfo:
    """What made the embeddings: a name, a version (e.g. a weights sha256 prefix), and the width."""

    name: str
    version: str
    dim: int

    def describe(self) -> str:
        return f"{self.name} (version {self.version}, {self.dim}-d)"


@dataclass
class Match:
    """Nearest enrolled identity of a query, and its distance (Euclidean)."""

    identity: str
    distance: float


class FaceDatabase:
    """An enrolment database file.

    Args:
        path: the SQLite file.
        model: the model whose embeddings go in and are searched; None opens it to list or remove only
            (the model is then the one the file records).
        create: create the file when missing (otherwise a missing file raises MissingFileError).

    Raises:
        FileFormatError: the file is not a cnnkit face database (or is corrupt).
        InputError: the file was made with another model than `model`.
    """

    def __init__(self, path: str | Path, model: ModelInfo | None = None, *, create: bool = False):
        self.path = Path(path)
        if not self.path.exists() and not create:
            raise MissingFileError(f"face database not found: {self.path} (enrol someone first: "
                                   f"cnnkit face enroll --db {self.path} NAME IMAGE)")
        if create and model is None and not self.path.exists():
            raise InputError("a new face database needs the model its embeddings come from")
        try:
            self.conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)  # explicit transactions
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable at checkpoints, never corrupt
            self.conn.executescript(_SCHEMA)
            stored = dict(self.conn.execute("SELECT key, value FROM meta").fetchall())
        except sqlite3.DatabaseError as e:
            raise FileFormatError(f"{self.path}: not a readable face database ({e}); "
                                  "restore it from a backup or enrol into a new file") from None
        if stored:
            if stored.get("schema") != SCHEMA_VERSION or "model_name" not in stored:
                raise FileFormatError(f"{self.path}: not a cnnkit face database (no model recorded)")
            self.model = ModelInfo(stored["model_name"], stored["model_version"], int(stored["dim"]))
            if model is not None and model != self.model:
                raise InputError(f"{self.path} holds embeddings of {self.model.describe()}, not of "
                                 f"{model.describe()}; distances between two models mean nothing: use the same "
                                 "model or another --db")
        elif model is not None:
            self.model = model
            with self._transaction():
                self.conn.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", [
                    ("schema", SCHEMA_VERSION), ("model_name", model.name), ("model_version", model.version),
                    ("dim", str(model.dim))])
        else:
            raise FileFormatError(f"{self.path}: not a cnnkit face database (no model recorded)")
        self._cache: tuple[int, np.ndarray, np.ndarray] | None = None  # (data_version, names, matrix)
        self._norms = np.zeros(0, np.float32)  # squared norms of the matrix's rows

    # ------------------------------------------------------------------------------------------ writing
    def _transaction(self):
        self._cache = None  # data_version sees other connections' commits, not this one's: drop the matrix
        return _Transaction(self.conn)

    def enroll(self, identity: str, embeddings: Iterable[np.ndarray], sources: Iterable[str | None] = ()) -> int:
        """Add embeddings of `identity`, all or none (one transaction).

        Args:
            identity: the name.
            embeddings: (D,) vectors (an iterable: it is consumed inside the transaction).
            sources: the sha256 of each embedding's source image (may be shorter: None for the rest).

        Returns:
            The number of rows added.
        """
        identity = identity.strip()
        if not identity:
            raise InputError("the identity name is empty")
        when = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
        sources = iter(sources)
        n = 0
        with self._transaction():
            for e in embeddings:
                e = np.asarray(e, np.float32).reshape(-1)
                if e.shape != (self.model.dim,) or not np.isfinite(e).all():
                    raise InputError(f"an embedding of {identity!r} has shape {e.shape} (or is not finite); "
                                     f"{self.model.describe()} gives ({self.model.dim},)")
                self.conn.execute(
                    "INSERT INTO embeddings (identity, embedding, model_name, model_version, source_sha256, "
                    "enrolled) VALUES (?, ?, ?, ?, ?, ?)",
                    (identity, e.astype("<f4").tobytes(), self.model.name, self.model.version,
                     next(sources, None), when))
                n += 1
        return n

    def remove(self, identity: str) -> int:
        """Delete every row of `identity`; an unknown name raises UnknownNameError."""
        with self._transaction():
            n = self.conn.execute("DELETE FROM embeddings WHERE identity = ?", (identity,)).rowcount
        if n == 0:
            raise self._unknown(identity)
        return n

    # ------------------------------------------------------------------------------------------ reading
    def identities(self) -> list[tuple[str, int, str]]:
        """(identity, number of embeddings, first enrolment date), sorted by name."""
        return [tuple(r) for r in self.conn.execute(
            "SELECT identity, COUNT(*), MIN(enrolled) FROM embeddings GROUP BY identity ORDER BY identity")]

    def __len__(self) -> int:
        return int(self.conn.execute("SELECT COUNT(*) FROM embeddings").fetchone()[0])

    def _unknown(self, identity: str) -> UnknownNameError:
        import difflib

        names = [r[0] for r in self.identities()]
        close = difflib.get_close_matches(identity, names, n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(close)}?" if close else (
            f"; enrolled: {', '.join(names[:10])}{' ...' if len(names) > 10 else ''}" if names else "; it is empty")
        return UnknownNameError(f"{identity!r} is not enrolled in {self.path}{hint}")

    def matrix(self) -> tuple[np.ndarray, np.ndarray]:
        """(names (N,) object array, embeddings (N, D) float32), reloaded only after a change to the file."""
        version = self.conn.execute("PRAGMA data_version").fetchone()[0]
        if self._cache is None or self._cache[0] != version:
            # one SELECT is one snapshot: names and vectors from the same state, even while another process writes
            rows = self.conn.execute("SELECT identity, embedding FROM embeddings ORDER BY id").fetchall()
            names = np.array([r[0] for r in rows], dtype=object)
            blob = b"".join(r[1] for r in rows)
            mat = np.frombuffer(blob, "<f4").reshape(len(rows), self.model.dim) if rows else \
                np.zeros((0, self.model.dim), np.float32)
            self._cache = (version, names, mat)
            self._norms = row_norms(mat)
        return self._cache[1], self._cache[2]

    def embeddings_of(self, identity: str) -> np.ndarray:
        names, mat = self.matrix()
        rows = mat[names == identity]
        if len(rows) == 0:
            raise self._unknown(identity)
        return rows

    def search(self, queries: np.ndarray) -> list[Match | None]:
        """The nearest enrolled embedding of each query (exact, vectorised), or None when the db is empty.

        Args:
            queries: (Q, D) or (D,) embeddings of this database's model.
        """
        q = np.atleast_2d(np.asarray(queries, np.float32))
        if q.shape[1] != self.model.dim:
            raise InputError(f"queries have {q.shape[1]} dimensions; {self.model.describe()} gives {self.model.dim}")
        names, mat = self.matrix()
        if len(mat) == 0:
            return [None] * len(q)
        d2, idx = nearest_rows(q, mat, self._norms)
        return [Match(str(names[i]), float(np.sqrt(max(d, 0.0)))) for d, i in zip(d2, idx, strict=True)]

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> FaceDatabase:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def row_norms(mat: np.ndarray) -> np.ndarray:
    """||m||^2 of every row (N,), without an (N, D) temporary."""
    return np.einsum("ij,ij->i", mat, mat)


def nearest_rows(q: np.ndarray, mat: np.ndarray, norms: np.ndarray | None = None,
                 block: int = 262_144) -> tuple[np.ndarray, np.ndarray]:
    """Squared distance to, and index of, the nearest row of `mat` (N, D) for each query (Q, D).

    ||q - m||^2 = ||q||^2 - 2 q.m + ||m||^2: one matrix product per block of rows, with the rows' squared norms
    `norms` (N,) computed once (`row_norms`) and kept beside the matrix.
    """
    norms = row_norms(mat) if norms is None else norms
    best_d = np.full(len(q), np.inf, np.float64)
    best_i = np.zeros(len(q), np.int64)
    qq = (q.astype(np.float64) ** 2).sum(1)
    for s in range(0, len(mat), block):
        d = norms[None, s : s + block] - 2.0 * (q @ mat[s : s + block].T)  # (Q, b), without ||q||^2
        i = d.argmin(1)
        v = d[np.arange(len(q)), i] + qq
        better = v < best_d
        best_d[better], best_i[better] = v[better], i[better] + s
    return best_d, best_i


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on any exception (the connection is in autocommit mode)."""

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn

    def __enter__(self):
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, exc_type, exc, tb) -> None:
        self.conn.execute("ROLLBACK" if exc_type else "COMMIT")

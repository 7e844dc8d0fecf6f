"""The split is a property of the run, not of the folder: which files trained, validated and tested a run.

A stratified split depends on the files a class holds: add one image to a class folder and that class's split
reshuffles, so evaluating the grown folder tests on images the run trained on. `cnnkit train` therefore writes
`RUN_DIR/split.json` (every file of every split, with its sha256) for data sets read from files, and
`cnnkit evaluate` evaluates the run's own recorded split when it finds that record beside the checkpoint, and
warns when any evaluated image (same content, whatever its name) was a training image.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from cnnkit.io import atomic_write

SPLIT_FILE = "split.json"


def _file_paths(ds) -> list[Path] | None:
    """The file of every item of an ImageDataset read from files (None for in-memory data: built-ins, IDX)."""
    store = getattr(ds, "_store", None)
    paths = getattr(store, "paths", None)
    if paths is None:
        return None
    return [Path(paths[int(i)]) for i in ds._indices]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_split_record(out_dir: str | os.PathLike, splits: dict[str, Any], source: str) -> Path | None:
    """Write RUN_DIR/split.json for file data sets; returns its path (None when the data is not from files)."""
    record: dict[str, Any] = {"source": str(source), "splits": {}}
    root = Path(source)
    for name, ds in splits.items():
        paths = _file_paths(ds) if ds is not None else None
        if paths is None:
            return None
        record["splits"][name] = [{"path": _relative(p, root), "sha256": _sha256(p)} for p in paths]
    target = Path(out_dir) / SPLIT_FILE
    with atomic_write(target, "w") as f:
        json.dump(record, f)
    return target


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path.resolve())


def apply_split_record(checkpoint: str | os.PathLike, split: str, ds, source: str) -> list[str]:
    """Restrict `ds` (a split of a file data set) to the files the run recorded for `split`; returns notes.

    Notes say how many images were evaluated from the record, how many are new since training (in no split),
    and warn when evaluated images have the content of training images.
    """
    record_path = Path(checkpoint).parent / SPLIT_FILE
    paths = _file_paths(ds)
    if paths is None or not record_path.is_file():
        return []
    record = json.loads(record_path.read_text())
    recorded = record.get("splits", {})
    root = Path(source)
    notes = []
    if split in recorded:
        wanted = {e["path"] for e in recorded[split]}
        # every file of the folder, so a recorded test image that moved into train in a reshuffle is found
        all_paths = list(getattr(ds._store, "paths", []))
        rel_all = [_relative(Path(p), root) for p in all_paths]
        keep = np.array([i for i, r in enumerate(rel_all) if r in wanted], dtype=np.int64)
        targets = ds._pool_targets
        missing = len(wanted) - len(keep)
        ds._indices = keep
        ds.targets = [int(t) for t in targets[keep]]
        paths = [Path(all_paths[int(i)]) for i in keep]
        new = len(all_paths) - sum(len(v) for v in recorded.values())
        notes.append(f"evaluating the run's own {split} split as recorded in {record_path} ({len(keep)} images"
                     + (f"; {missing} recorded images are gone" if missing > 0 else "")
                     + (f"; {new} images added since training are in no split" if new > 0 else "") + ")")
    train_hashes = {e["sha256"] for e in recorded.get("train", [])}
    if split != "train" and train_hashes:
        overlap = sum(_sha256(p) in train_hashes for p in paths)
        if overlap:
            notes.append(f"warning: {overlap} of the {len(paths)} evaluated images have the content of training "
                         "images of this run: the score overstates how well it generalises")
    return notes

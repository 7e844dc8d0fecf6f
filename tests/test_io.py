"""Image reading errors and atomic writes."""

import os

import numpy as np
import pytest

from cnnkit.errors import FileFormatError, MissingFileError
from cnnkit.io import atomic_write, read_image, save_image


def test_read_missing_file_names_it(tmp_path):
    with pytest.raises(MissingFileError, match="nope.png"):
        read_image(tmp_path / "nope.png")


def test_read_non_image_names_it(tmp_path):
    bad = tmp_path / "notes.png"
    bad.write_text("this is not a picture")
    with pytest.raises(FileFormatError, match="notes.png"):
        read_image(bad)


def test_save_then_read_round_trips(tmp_path):
    img = np.random.randint(0, 256, (7, 5, 3), dtype=np.uint8)
    path = save_image(tmp_path / "x.png", img)
    assert np.array_equal(read_image(path), img)
    assert read_image(path, mode="L").shape == (7, 5)


def test_atomic_write_keeps_old_file_when_writer_fails(tmp_path):
    target = tmp_path / "db.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_write(target) as f:
        f.write(b"half-written")
        raise RuntimeError("crash mid-write")
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["db.bin"]  # no temporary left behind


def test_atomic_write_gives_ordinary_permissions(tmp_path):
    umask = os.umask(0o022)
    try:
        with atomic_write(tmp_path / "out.txt", "w") as f:
            f.write("x")
    finally:
        os.umask(umask)
    assert (tmp_path / "out.txt").stat().st_mode & 0o777 == 0o644

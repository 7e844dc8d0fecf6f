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


def test_atomic_write_errors_name_the_users_path(tmp_path, monkeypatch):
    """A folder, a file in the way, an unwritable folder or a full disk: one line naming the path asked for."""
    import errno
    import tempfile

    import pytest

    from cnnkit.errors import InputError
    from cnnkit.io import atomic_write

    with pytest.raises(InputError, match="it is a folder"):
        with atomic_write(tmp_path) as f:
            f.write(b"x")
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="is a file, not a folder"):
        with atomic_write(tmp_path / "file" / "sub" / "out.png") as f:
            f.write(b"x")

    def refuse(*a, **k):
        raise PermissionError(errno.EACCES, "Permission denied")

    with monkeypatch.context() as m:
        m.setattr(tempfile, "mkstemp", refuse)
        with pytest.raises(InputError, match=r"not writable \(Permission denied\)") as info:
            with atomic_write(tmp_path / "out.png") as f:
                f.write(b"x")
        assert ".tmp" not in str(info.value)

    target = tmp_path / "full.bin"
    target.write_bytes(b"old")
    with pytest.raises(InputError, match="No space left") as info:
        with atomic_write(target) as f:
            raise OSError(errno.ENOSPC, "No space left on device")
    assert ".tmp" not in str(info.value) and target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_save_image_format_follows_suffix(tmp_path):
    import numpy as np
    import pytest
    from PIL import Image

    from cnnkit.errors import InputError
    from cnnkit.io import save_image

    img = np.zeros((4, 5, 3), np.uint8)
    for suffix, fmt in ((".png", "PNG"), (".JPG", "JPEG"), (".tif", "TIFF"), ("", "PNG")):
        path = save_image(tmp_path / f"a{suffix}", img)
        assert Image.open(path).format == fmt
    with pytest.raises(InputError, match="unknown image format '.xyz'"):
        save_image(tmp_path / "a.xyz", img)
    assert not (tmp_path / "a.xyz").exists()


def test_save_figure_format_follows_suffix(tmp_path):
    import matplotlib.pyplot as plt
    import pytest

    from cnnkit.errors import InputError
    from cnnkit.io import save_figure

    assert save_figure(tmp_path / "f.png", plt.figure()).read_bytes()[:4] == b"\x89PNG"
    assert save_figure(tmp_path / "f.pdf", plt.figure()).read_bytes()[:4] == b"%PDF"
    with pytest.raises(InputError, match="unknown figure format '.xyz'"):
        save_figure(tmp_path / "f.xyz", plt.figure())
    assert not (tmp_path / "f.xyz").exists()

"""MNIST IDX and CIFAR python batches, on small files written here; the CIFAR reader refuses unsafe pickles."""

import gzip
import os
import pickle
import struct

import numpy as np
import pytest

from cnnkit.data import load_dataset, read_cifar_batch, read_idx
from cnnkit.errors import FileFormatError

_CODES = {np.dtype("u1"): 0x08, np.dtype("i1"): 0x09, np.dtype(">i2"): 0x0B, np.dtype(">i4"): 0x0C,
          np.dtype(">f4"): 0x0D, np.dtype(">f8"): 0x0E}


def write_idx(path, array, gz=False):
    """The IDX format, written plainly: magic (0, 0, type, ndim), big-endian dims, big-endian values."""
    a = np.asarray(array)
    big = a.astype(a.dtype.newbyteorder(">")) if a.dtype.itemsize > 1 else a
    code = _CODES[np.dtype(big.dtype.str if big.dtype.itemsize > 1 else big.dtype)]
    data = bytes([0, 0, code, a.ndim]) + b"".join(struct.pack(">I", d) for d in a.shape) + big.tobytes()
    (gzip.open if gz else open)(path, "wb").write(data)
    return path


@pytest.mark.parametrize("dtype", ["u1", "i1", "i2", "i4", "f4", "f8"])
def test_idx_round_trip_every_type(tmp_path, dtype):
    a = (np.random.default_rng(0).normal(0, 50, (3, 4, 5))).astype(dtype)
    assert np.array_equal(read_idx(write_idx(tmp_path / "x.idx", a)), a)
    assert np.array_equal(read_idx(write_idx(tmp_path / "x.idx.gz", a, gz=True)), a)


def test_idx_bad_files(tmp_path):
    p = write_idx(tmp_path / "x-images-idx3-ubyte", np.zeros((2, 3, 3), np.uint8))
    p.write_bytes(p.read_bytes()[:-4])
    with pytest.raises(FileFormatError, match="truncated"):
        read_idx(p)
    (tmp_path / "y").write_bytes(b"\x01\x02\x03\x04rest")
    with pytest.raises(FileFormatError, match="not an IDX"):
        read_idx(tmp_path / "y")


def _mnist(root, n_train=40, n_test=10, size=6):
    rng = np.random.default_rng(0)
    root.mkdir()
    tr = rng.integers(0, 256, (n_train, size, size), dtype=np.uint8)
    te = rng.integers(0, 256, (n_test, size, size), dtype=np.uint8)
    ytr, yte = np.arange(n_train) % 10, np.arange(n_test) % 10
    write_idx(root / "train-images-idx3-ubyte", tr)
    write_idx(root / "train-labels-idx1-ubyte", ytr.astype(np.uint8))
    write_idx(root / "t10k-images-idx3-ubyte.gz", te, gz=True)
    write_idx(root / "t10k-labels-idx1-ubyte.gz", yte.astype(np.uint8), gz=True)
    return tr, ytr, te, yte


def test_mnist_folder_keeps_the_official_test_split(tmp_path):
    tr, ytr, te, yte = _mnist(tmp_path / "mnist")
    test = load_dataset(str(tmp_path / "mnist"), split="test", in_chans=1)
    assert test.classes == [str(k) for k in range(10)] and test.targets == yte.tolist()
    assert all(np.array_equal(test.raw(i)[0][..., 0], te[i]) for i in range(len(te)))
    train = load_dataset(str(tmp_path / "mnist"), split="train", in_chans=1, val_fraction=0.25)
    val = load_dataset(str(tmp_path / "mnist"), split="val", in_chans=1, val_fraction=0.25)
    assert len(train) == 30 and len(val) == 10  # val is carved from the training files only
    got = sorted(train.raw(i)[0].tobytes() for i in range(30)) + sorted(val.raw(i)[0].tobytes() for i in range(10))
    assert sorted(got) == sorted(x[..., None].tobytes() for x in tr)
    rgb = load_dataset(str(tmp_path / "mnist" / "train-images-idx3-ubyte"), split="all", image_size=12)
    assert len(rgb) == 40 and rgb[0][0].shape == (3, 12, 12)


def _cifar_batch(path, images, labels, protocol=2):
    data = images.transpose(0, 3, 1, 2).reshape(len(images), -1)  # rows: R plane, G plane, B plane
    with open(path, "wb") as f:
        pickle.dump({b"batch_label": b"test", b"labels": list(map(int, labels)), b"data": data,
                     b"filenames": [b"x.png"] * len(labels)}, f, protocol=protocol)


def test_cifar_folder(tmp_path):
    rng = np.random.default_rng(0)
    root = tmp_path / "cifar-10-batches-py"
    root.mkdir()
    batches = []
    for name, n in (("data_batch_1", 20), ("data_batch_2", 20), ("test_batch", 10)):
        x = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
        y = np.arange(n) % 10
        _cifar_batch(root / name, x, y, protocol=2 if name != "data_batch_2" else pickle.HIGHEST_PROTOCOL)
        batches.append((x, y))
    with open(root / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": [f"name{k}".encode() for k in range(10)]}, f, protocol=2)

    x, y = read_cifar_batch(root / "data_batch_1")
    flat = batches[0][0].transpose(0, 3, 1, 2).reshape(20, -1)
    assert np.array_equal(x, batches[0][0]) and x[3, 5, 7, 2] == flat[3, 2 * 1024 + 5 * 32 + 7]
    test = load_dataset(str(root), split="test")
    assert test.classes[3] == "name3" and len(test) == 10
    assert all(np.array_equal(test.raw(i)[0], batches[2][0][i]) for i in range(10))
    assert len(load_dataset(str(root), split="train")) + len(load_dataset(str(root), split="val")) == 40


class _Evil:
    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (os.mkdir, (self.target,))


def test_cifar_reader_refuses_code_in_pickles(tmp_path):
    target = str(tmp_path / "pwned")
    bad = tmp_path / "data_batch_1"
    with open(bad, "wb") as f:
        pickle.dump({b"data": np.zeros((1, 3072), np.uint8), b"labels": [0], b"x": _Evil(target)}, f, protocol=2)
    with pytest.raises(FileFormatError, match="unsafe|refusing"):
        read_cifar_batch(bad)
    assert not os.path.exists(target)
    with pytest.raises(FileFormatError):
        load_dataset(str(tmp_path))

"""Image folders and CSV listings: formats, conversions, bad files, empty classes, loaders."""

import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from cnnkit.augment import build_transform
from cnnkit.data import DataWarning, load_dataset, make_loader
from cnnkit.errors import FileFormatError, InputError, MissingFileError


def _write(path, array, fmt=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, format=fmt)
    return path


def _folder(root, n=4, size=12, seed=0):
    """cat: RGB PNGs and JPEGs; dog: grayscale BMP/TIFF; returns {path: uint8 array as written}."""
    rng = np.random.default_rng(seed)
    written = {}
    for i in range(n):
        rgb = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        written[_write(root / "cat" / f"c{i}.png", rgb)] = rgb
        gray = rng.integers(0, 256, (size, size), dtype=np.uint8)
        ext = ".bmp" if i % 2 else ".tif"
        written[_write(root / "dog" / f"d{i}{ext}", gray)] = gray
    smooth = np.full((size, size, 3), 120, np.uint8)
    written[_write(root / "cat" / "sub" / "photo.jpg", smooth)] = smooth  # nested, and JPEG
    return written


def test_folder_reads_every_format_and_converts(tmp_path):
    written = _folder(tmp_path)
    ds = load_dataset(str(tmp_path), split="all", image_size=8)
    assert ds.classes == ["cat", "dog"] and len(ds) == 9 and ds.class_counts() == [5, 4]
    for i in range(len(ds)):
        path = ds.describe(i)
        src = Image.open(path).convert("RGB").resize((8, 8), Image.BILINEAR)
        raw, label = ds.raw(i)
        assert raw.shape == (8, 8, 3) and np.array_equal(raw, np.asarray(src))
        assert ds.classes[label] in path
    gray = load_dataset(str(tmp_path), split="all", in_chans=1)
    for i in range(len(gray)):
        raw, _ = gray.raw(i)
        assert raw.shape == (12, 12, 1)
        src = written[next(p for p in written if str(p) == gray.describe(i))]
        if src.ndim == 2:  # grayscale files come back unchanged
            assert np.array_equal(raw[..., 0], src)
    x, y = gray[0]
    assert x.shape == (1, 12, 12) and isinstance(y, int)


def test_statistics_come_from_the_train_split_only(tmp_path):
    _folder(tmp_path, n=6)
    train = load_dataset(str(tmp_path), split="train", seed=2)
    val = load_dataset(str(tmp_path), split="val", seed=2)
    pixels = np.concatenate([train.raw(i)[0].reshape(-1, 3) for i in range(len(train))]) / 255.0
    assert np.allclose(train.mean, pixels.mean(0)) and np.allclose(train.std, pixels.std(0))
    assert val.mean == train.mean  # val is normalised with the train statistics
    fixed = load_dataset(str(tmp_path), split="val", seed=2, mean=(0.5,) * 3, std=(0.25,) * 3)
    raw = torch.from_numpy(fixed.raw(0)[0].astype(np.float32)).permute(2, 0, 1) / 255
    assert torch.allclose(fixed[0][0], (raw - 0.5) / 0.25)


def test_corrupt_image_is_skipped_with_a_warning_or_stops_when_strict(tmp_path):
    _folder(tmp_path)
    bad = tmp_path / "dog" / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    good = _write(tmp_path / "cat" / "t.jpg", np.random.default_rng(0).integers(0, 256, (64, 64, 3), np.uint8))
    truncated = tmp_path / "cat" / "truncated.jpg"
    truncated.write_bytes(good.read_bytes()[:400])
    with pytest.warns(DataWarning) as record:
        ds = load_dataset(str(tmp_path), split="all", image_size=8)
    text = " ".join(str(w.message) for w in record)
    assert "broken.png" in text and "truncated.jpg" in text
    assert len(ds) == 10 and not any("broken" in ds.describe(i) for i in range(len(ds)))
    with pytest.raises(FileFormatError, match="broken.png|truncated.jpg"):
        load_dataset(str(tmp_path), image_size=8, strict=True)


def test_empty_class_folder_is_dropped_with_a_warning_or_stops_when_strict(tmp_path):
    _folder(tmp_path)
    (tmp_path / "emu").mkdir()
    (tmp_path / "emu" / "notes.txt").write_text("no images here")
    with pytest.warns(DataWarning, match="emu"):
        ds = load_dataset(str(tmp_path), split="all")
    assert ds.classes == ["cat", "dog"]
    with pytest.raises(InputError, match="emu"):
        load_dataset(str(tmp_path), strict=True)


def test_folder_layout_errors(tmp_path):
    _write(tmp_path / "loose.png", np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(InputError, match="one sub-folder per class"):
        load_dataset(str(tmp_path))
    mixed = tmp_path / "mixed"
    _write(mixed / "a" / "1.png", np.zeros((4, 4, 3), np.uint8))
    _write(mixed / "b" / "2.png", np.zeros((6, 5, 3), np.uint8))
    with pytest.raises(InputError, match="different sizes.*image_size"):
        load_dataset(str(mixed))
    assert load_dataset(str(mixed), split="all", image_size=4)[1][0].shape == (3, 4, 4)
    with pytest.raises(MissingFileError):
        load_dataset(str(tmp_path / "nope" / "data"))


def test_presplit_folder_keeps_its_splits(tmp_path):
    for split, n in (("train", 5), ("val", 2), ("test", 3)):
        for cls in ("a", "b"):
            for i in range(n):
                _write(tmp_path / split / cls / f"{i}.png", np.full((4, 4, 3), i, np.uint8))
    sizes = {s: len(load_dataset(str(tmp_path), split=s)) for s in ("train", "val", "test", "all")}
    assert sizes == {"train": 10, "val": 4, "test": 6, "all": 20}
    test = load_dataset(str(tmp_path), split="test")
    assert all("/test/" in test.describe(i) for i in range(len(test)))


def test_csv_listing(tmp_path):
    imgs = tmp_path / "imgs"
    rng = np.random.default_rng(0)
    rows = ["path,label"]
    for i in range(12):
        _write(imgs / f"{i}.png", rng.integers(0, 256, (6, 6, 3), dtype=np.uint8))
        rows.append(f"imgs/{i}.png,{[2, 10, 1][i % 3]}")
    csv = tmp_path / "list.csv"
    csv.write_text("\n".join(rows) + "\n\n")
    ds = load_dataset(str(csv), split="all")
    assert ds.classes == ["1", "2", "10"]  # numeric labels sort as numbers
    assert [ds.classes[t] for t in ds.targets] == [r.split(",")[1] for r in rows[1:]]
    assert np.array_equal(ds.raw(3)[0], np.asarray(Image.open(imgs / "3.png")))

    csv.write_text("imgs/0.png,a\nimgs/missing.png,b\n")
    with pytest.raises(MissingFileError, match=r"row 2.*missing\.png"):
        load_dataset(str(csv))
    csv.write_text("imgs/0.png,a\nimgs/1.png\n")
    with pytest.raises(FileFormatError, match="row 2"):
        load_dataset(str(csv))
    (imgs / "bad.png").write_bytes(b"garbage")
    csv.write_text("imgs/0.png,a\nimgs/bad.png,b\nimgs/1.png,b\n")
    with pytest.warns(DataWarning, match=r"bad\.png \(row 2"):
        assert len(load_dataset(str(csv), split="all")) == 2


def _batches(loader):
    return [(x.clone(), y.clone()) for x, y in loader]


def test_loader_workers_are_reproducible_and_independent(tmp_path):
    # one image repeated: any difference between items comes from the augmentation alone
    img = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    for i in range(8):
        _write(tmp_path / ("a" if i % 2 else "b") / f"{i}.png", img)

    def loader(seed, workers):
        ds = load_dataset(str(tmp_path), split="all", transform=build_transform("crop,color", image_size=16, seed=0))
        return make_loader(ds, batch_size=4, shuffle=True, seed=seed, num_workers=workers)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a, b, c = _batches(loader(1, 2)), _batches(loader(1, 2)), _batches(loader(2, 2))
    assert all(torch.equal(x1, x2) and torch.equal(y1, y2) for (x1, y1), (x2, y2) in zip(a, b, strict=True))
    assert not all(torch.equal(x1, x2) for (x1, _), (x2, _) in zip(a, c, strict=True))
    items = torch.cat([x for x, _ in a])
    # the two workers drew different augmentations: no two items are identical
    flat = items.flatten(1)
    assert torch.cdist(flat, flat).add(torch.eye(len(flat)) * 1e9).min() > 1e-3
    # in the main process too
    d, e = _batches(loader(1, 0)), _batches(loader(1, 0))
    assert all(torch.equal(x1, x2) for (x1, _), (x2, _) in zip(d, e, strict=True))


def test_loader_argument_errors():
    ds = load_dataset("digits", split="val")
    with pytest.raises(InputError, match="batch_size"):
        make_loader(ds, batch_size=0, shuffle=False, seed=0)
    with pytest.raises(InputError, match="sampler"):
        make_loader(ds, batch_size=4, shuffle=True, seed=0, sampler=torch.utils.data.SequentialSampler(ds))
    x, y = next(iter(make_loader(ds, batch_size=4, shuffle=False, seed=0)))
    assert x.shape == (4, 3, 32, 32) and y.tolist() == ds.targets[:4]


def test_splits_share_one_scan_until_the_folder_changes(tmp_path):
    _folder(tmp_path)
    a = load_dataset(str(tmp_path), split="train")
    b = load_dataset(str(tmp_path), split="test")
    assert a._store is b._store  # read once for all splits
    _write(tmp_path / "dog" / "new.png", np.zeros((12, 12), np.uint8))
    c = load_dataset(str(tmp_path), split="all")
    assert c._store is not a._store and len(c) == 10

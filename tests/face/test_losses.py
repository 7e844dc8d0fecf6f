"""Triplet loss on hand-computed cases; miners against brute-force enumeration of triplets."""

from __future__ import annotations

import itertools

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from cnnkit.face.losses import (
    L2,
    AllTripletsMiner,
    BatchHardMiner,
    Cosine,
    SemiHardMiner,
    SquaredL2,
    TripletLoss,
    triplet_loss,
)


def test_triplet_loss_hand_computed():
    # ||A-P||^2 = 1, ||A-N||^2 = 4: 1 - 4 + 0.2 < 0 -> 0 (an easy triplet costs nothing)
    a, p, n = torch.tensor([[0.0, 0.0]]), torch.tensor([[1.0, 0.0]]), torch.tensor([[2.0, 0.0]])
    assert triplet_loss(a, p, n, margin=0.2).item() == 0.0
    # ||A-P||^2 = 1, ||A-N||^2 = 0.25: 1 - 0.25 + 0.2 = 0.95
    n2 = torch.tensor([[0.5, 0.0]])
    assert triplet_loss(a, p, n2, margin=0.2).item() == pytest.approx(0.95)
    # summed over the batch: 0 + 0.95 + (d(A,P)=d(A,N)=2 -> alpha = 0.2)
    A = torch.tensor([[0.0, 0.0], [0.0, 0.0], [1.0, 1.0]])
    P = torch.tensor([[1.0, 0.0], [1.0, 0.0], [2.0, 2.0]])
    N = torch.tensor([[2.0, 0.0], [0.5, 0.0], [0.0, 0.0]])
    assert triplet_loss(A, P, N, margin=0.2).item() == pytest.approx(1.15)
    assert triplet_loss(A, P, N, margin=0.2, reduction="mean").item() == pytest.approx(1.15 / 3)
    per = triplet_loss(A, P, N, margin=0.2, reduction="none")
    torch.testing.assert_close(per, torch.tensor([0.0, 0.95, 0.2]))


def test_triplet_loss_gradient_pulls_positive_and_pushes_negative():
    a = torch.tensor([[0.0, 0.0]], requires_grad=True)
    p = torch.tensor([[1.0, 0.0]], requires_grad=True)
    n = torch.tensor([[0.5, 0.0]], requires_grad=True)
    triplet_loss(a, p, n, margin=0.2).backward()
    # d/dP ||A-P||^2 = 2(P-A) = (2, 0); d/dN -||A-N||^2 = -2(N-A) = (-1, 0)
    torch.testing.assert_close(p.grad, torch.tensor([[2.0, 0.0]]))
    torch.testing.assert_close(n.grad, torch.tensor([[-1.0, 0.0]]))


@pytest.mark.parametrize("dist", [SquaredL2(), L2(), Cosine()])
def test_pairwise_equals_rowwise(dist):
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(7, 5, generator=g), torch.randn(9, 5, generator=g)
    pw = dist.pairwise(x, y)
    ref = torch.stack([dist.rowwise(x[i : i + 1].expand(9, -1), y) for i in range(7)])
    torch.testing.assert_close(pw, ref, atol=1e-5, rtol=1e-5)


def _brute(emb, labels, margin=0.2):
    """Every valid triplet by three loops, with squared distances."""
    d = lambda i, j: float(((emb[i] - emb[j]) ** 2).sum())  # noqa: E731
    out = []
    for a, p, n in itertools.product(range(len(labels)), repeat=3):
        if a != p and labels[a] == labels[p] and labels[a] != labels[n]:
            out.append((a, p, n, d(a, p), d(a, n)))
    return out


labels_st = st.lists(st.integers(0, 3), min_size=2, max_size=10)


@settings(max_examples=40, deadline=None)
@given(labels=labels_st, seed=st.integers(0, 10_000))
def test_miners_against_brute_force(labels, seed):
    lab = torch.tensor(labels)
    emb = torch.randn(len(labels), 3, generator=torch.Generator().manual_seed(seed))
    brute = _brute(emb, labels)
    # all valid triplets
    a, p, n = AllTripletsMiner()(emb, lab)
    assert sorted(zip(a.tolist(), p.tolist(), n.tolist(), strict=True)) == sorted(t[:3] for t in brute)
    # only the active ones
    a, p, n = AllTripletsMiner(active_only=True, margin=0.2)(emb, lab)
    active = sorted(t[:3] for t in brute if t[3] - t[4] + 0.2 > 0)
    assert sorted(zip(a.tolist(), p.tolist(), n.tolist(), strict=True)) == active

    # batch-hard: per anchor, the triplet of largest d(a,p) and smallest d(a,n)
    a, p, n = BatchHardMiner()(emb, lab)
    anchors = sorted({t[0] for t in brute})
    assert a.tolist() == anchors
    for ai, pi, ni in zip(a.tolist(), p.tolist(), n.tolist(), strict=True):
        mine = [t for t in brute if t[0] == ai]
        assert max(t[3] for t in mine) == pytest.approx(float(((emb[ai] - emb[pi]) ** 2).sum()), abs=1e-5)
        assert min(t[4] for t in mine) == pytest.approx(float(((emb[ai] - emb[ni]) ** 2).sum()), abs=1e-5)

    # semi-hard: per (a, p), the nearest negative with d(a,n) > d(a,p); else the farthest negative
    a, p, n = SemiHardMiner()(emb, lab)
    pairs = sorted({t[:2] for t in brute})
    assert sorted(zip(a.tolist(), p.tolist(), strict=True)) == pairs
    for ai, pi, ni in zip(a.tolist(), p.tolist(), n.tolist(), strict=True):
        cands = [t for t in brute if t[:2] == (ai, pi)]
        dap = cands[0][3]
        farther = [t[4] for t in cands if t[4] > dap + 1e-6]
        want = min(farther) if farther else max(t[4] for t in cands)
        assert float(((emb[ai] - emb[ni]) ** 2).sum()) == pytest.approx(want, abs=1e-4)


def test_triplet_loss_module_equals_sum_over_mined_triplets():
    g = torch.Generator().manual_seed(1)
    emb = torch.randn(12, 4, generator=g)
    lab = torch.arange(12) // 3
    brute = _brute(emb, lab.tolist())
    want = sum(max(t[3] - t[4] + 0.2, 0.0) for t in brute)
    loss = TripletLoss(0.2, miner="all", reduction="sum")
    assert loss(emb, lab).item() == pytest.approx(want, rel=1e-4)
    assert loss.last_stats["triplets"] == len(brute)
    assert loss.last_stats["active"] == sum(t[3] - t[4] + 0.2 > 0 for t in brute)


def test_no_triplets_gives_zero_with_gradient():
    emb = torch.randn(4, 3, requires_grad=True)
    loss = TripletLoss(miner="batch_hard")(emb, torch.arange(4))  # all different: no positives
    assert loss.item() == 0.0
    loss.backward()
    assert emb.grad is not None


def test_active_fraction_counts_all_valid_triplets_when_the_miner_keeps_only_active_ones():
    emb = torch.randn(12, 4, generator=torch.Generator().manual_seed(3))
    lab = torch.arange(12) // 3
    brute = _brute(emb, lab.tolist())
    loss = TripletLoss(0.2, miner=AllTripletsMiner(active_only=True, margin=0.2))
    loss(emb, lab)
    assert loss.last_stats["triplets"] == len(brute)
    assert loss.last_stats["active"] == sum(t[3] - t[4] + 0.2 > 0 for t in brute)

"""P x K batches; the Siamese head against its formula; in-batch pairs."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch

from cnnkit.face.sampler import PKSampler
from cnnkit.face.siamese import SiameseHead, SiameseLoss, batch_pairs


def test_pk_batches_hold_p_identities_k_each():
    labels = np.repeat(np.arange(30), 9)  # 30 identities, 9 images each
    s = PKSampler(labels, p=8, k=4, seed=1)
    batches = list(s)
    assert len(batches) == len(s) > 0
    for b in batches:
        counts = Counter(labels[b].tolist())
        assert len(b) == 32 and len(counts) == 8 and set(counts.values()) == {4}
    # an epoch uses most images, each at most once
    used = [i for b in batches for i in b]
    assert len(used) == len(set(used)) >= 0.8 * len(labels)
    again = list(PKSampler(labels, p=8, k=4, seed=1))
    assert again == batches
    s.set_epoch(1)
    assert list(s) != batches


def test_pk_tops_up_small_identities_and_splits_over_ranks():
    labels = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2, 3, 3, 3])
    b = next(iter(PKSampler(labels, p=2, k=3)))
    assert len(b) == 6 and set(Counter(labels[b].tolist()).values()) == {3}
    ranks = [list(PKSampler(labels, p=2, k=2, rank=r, world_size=2)) for r in range(2)]
    whole = list(PKSampler(labels, p=2, k=2))
    assert ranks[0] == whole[0::2] and ranks[1] == whole[1::2]
    with pytest.raises(ValueError):
        PKSampler(labels, p=5, k=2)


@pytest.mark.parametrize("variant", ["l1", "chi2"])
def test_siamese_head_formula(variant):
    g = torch.Generator().manual_seed(0)
    head = SiameseHead(4, variant)
    torch.nn.init.normal_(head.linear.weight, generator=g)
    fi, fj = torch.randn(5, 4, generator=g), torch.randn(5, 4, generator=g)
    w, b = head.linear.weight[0], head.linear.bias[0]
    for r in range(5):
        if variant == "l1":
            feats = [abs(fi[r, k] - fj[r, k]) for k in range(4)]
        else:
            feats = [(fi[r, k] - fj[r, k]) ** 2 / (abs(fi[r, k]) + abs(fj[r, k]) + 1e-6) for k in range(4)]
        want = torch.sigmoid(sum(w[k] * feats[k] for k in range(4)) + b)
        assert torch.sigmoid(head(fi, fj))[r].item() == pytest.approx(want.item(), rel=1e-5)


def test_batch_pairs_balanced_and_labelled():
    labels = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    i, j, t = batch_pairs(labels, generator=torch.Generator().manual_seed(0))
    assert (i < j).all()
    assert torch.equal(t, (labels[i] == labels[j]).float())
    assert int(t.sum()) == 4 and len(t) == 8
    i, j, t = batch_pairs(labels, balance=False)
    assert len(t) == 28


def test_siamese_loss_learns_on_separable_embeddings():
    torch.manual_seed(0)
    labels = torch.arange(8).repeat_interleave(4)
    emb = torch.nn.functional.normalize(torch.randn(8, 16)[labels] + 0.05 * torch.randn(32, 16), dim=1)
    loss = SiameseLoss(16)
    opt = torch.optim.Adam(loss.parameters(), 0.05)
    for _ in range(100):
        opt.zero_grad()
        out = loss(emb, labels)
        out.backward()
        opt.step()
    assert loss.last_stats["correct"] / loss.last_stats["pairs"] > 0.95

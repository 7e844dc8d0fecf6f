"""One-shot recognition on held-out `faces` identities: triplet loss vs the binary Siamese head, same budget;
and open-set identification against 100 enrolled identities with a threshold chosen on other identities.

    .venv/bin/python benchmarks/bench_face_oneshot.py train --loss triplet --epochs 4 --out /tmp/triplet.pt
    .venv/bin/python benchmarks/bench_face_oneshot.py train --loss siamese --epochs 4 --out /tmp/siamese.pt
    .venv/bin/python benchmarks/bench_face_oneshot.py openset runs/faces/best.safetensors

`train` fits the CPU default encoder (face_embedder_small) on the 500 training identities with P x K = 16 x 4
batches, AdamW and a one-cycle schedule, and prints one-shot 20-way top-1 on the 200 test identities after every
epoch, beside raw-pixel nearest neighbour. `openset` enrols one image of each of 100 test identities, queries
another image of each and one image of each of 100 never-enrolled test identities; tau is chosen on the
validation identities (the smallest distance that answers "unknown" for 95% of never-enrolled ones there).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from cnnkit.face.data import load_faces  # noqa: E402
from cnnkit.face.losses import AllTripletsMiner, TripletLoss  # noqa: E402
from cnnkit.face.oneshot import oneshot_accuracy  # noqa: E402
from cnnkit.face.recognize import UNKNOWN, identify_arrays  # noqa: E402
from cnnkit.face.sampler import PKSampler  # noqa: E402
from cnnkit.face.siamese import SiameseLoss  # noqa: E402
from cnnkit.models import create_model  # noqa: E402


@torch.no_grad()
def embed(model, ds) -> np.ndarray:
    model.eval()
    out = torch.cat([model(ds._x[i : i + 500]) for i in range(0, len(ds), 500)]).numpy()
    model.train()
    return out


def train(args) -> None:
    torch.manual_seed(args.seed)
    tr, te = load_faces("train"), load_faces("test")
    raw = oneshot_accuracy(te.images.reshape(len(te), -1).astype(np.float32), te.labels)
    model = create_model("face_embedder_small")
    crit = TripletLoss(0.2, miner=AllTripletsMiner(active_only=True), reduction="mean") if args.loss == "triplet" \
        else SiameseLoss(64, args.variant)
    params = list(model.parameters()) + list(crit.parameters())
    opt = torch.optim.AdamW(params, 1e-3, weight_decay=5e-4)
    sampler = PKSampler(tr.labels, 16, 4, seed=args.seed)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 3e-3, total_steps=args.epochs * len(sampler))
    print(f"{args.loss}{'/' + args.variant if args.loss == 'siamese' else ''}: raw-pixel NN one-shot 20-way {raw:.3f}")
    for epoch in range(args.epochs):
        sampler.set_epoch(epoch)
        t0, total = time.time(), 0.0
        for b in sampler:
            x = tr._x[b]
            flip = torch.rand(len(b)) < 0.5
            x = torch.where(flip[:, None, None, None], x.flip(3), x)
            loss = crit(model(x), torch.from_numpy(tr.labels[b]))
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item()
        acc = oneshot_accuracy(embed(model, te), te.labels, episodes=300)
        print(f"epoch {epoch + 1}: loss {total / len(sampler):.4f}, one-shot 20-way {acc:.3f} "
              f"({time.time() - t0:.0f} s)", flush=True)
    if args.out:
        torch.save(model.state_dict(), args.out)


def openset(args) -> None:
    if args.checkpoint.endswith(".pt"):
        model = create_model("face_embedder_small")
        model.load_state_dict(torch.load(args.checkpoint))
    else:
        from cnnkit.checkpoint import load_model_file

        model, _ = load_model_file(args.checkpoint)
    # 200 validation identities, so that tau is chosen with a gallery as large as the test's (100 enrolled): the
    # nearest of more enrolled identities is nearer, and a tau chosen against 50 lets more strangers in
    va, te = load_faces("val", identities=200), load_faces("test")
    ev, et = embed(model, va), embed(model, te)

    def split(e, labels, n_enrol, first):  # enrolled: image `first` of identities [0, n); queries: image first + 1
        ids = np.unique(labels)
        enrolled, unknown = ids[:n_enrol], ids[n_enrol : 2 * n_enrol]
        idx = {i: np.flatnonzero(labels == i) for i in ids}
        enrol = np.array([idx[i][first] for i in enrolled])
        known_q = np.array([idx[i][first + 1] for i in enrolled])
        unknown_q = np.array([idx[i][first] for i in unknown])
        return enrolled, e[enrol], e[known_q], e[unknown_q]

    # tau from the validation identities: 100 enrolled, 100 never enrolled
    _, enr, _, unk = split(ev, va.labels, 100, 0)
    d_unknown = np.sqrt(((unk[:, None] - enr[None]) ** 2).sum(-1)).min(1)
    tau = float(np.quantile(d_unknown, 0.05))
    names, enr, known, unknown = split(et, te.labels, 100, 0)
    ans_known = identify_arrays(names, enr, known, tau)
    ans_unknown = identify_arrays(names, enr, unknown, tau)
    recognised = np.mean([a == str(n) for a, n in zip(ans_known, names, strict=True)])
    rejected = np.mean([a == UNKNOWN for a in ans_unknown])
    print(f"tau {tau:.4f} (chosen on 200 validation identities); 100 enrolled test identities: "
          f"{recognised:.3f} recognised, never-enrolled answered unknown: {rejected:.3f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train")
    t.add_argument("--loss", choices=["triplet", "siamese"], default="triplet")
    t.add_argument("--variant", choices=["l1", "chi2"], default="l1")
    t.add_argument("--epochs", type=int, default=10)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--out", default=None)
    o = sub.add_parser("openset")
    o.add_argument("checkpoint")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    train(args) if args.cmd == "train" else openset(args)


if __name__ == "__main__":
    main()

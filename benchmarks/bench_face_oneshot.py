"""One-shot recognition on held-out `faces` identities: triplet loss vs the binary Siamese head, same budget;
and open-set identification against 100 enrolled identities with a threshold chosen on other identities.

    .venv/bin/python benchmarks/bench_face_oneshot.py train --loss triplet --epochs 4 --out /tmp/triplet.pt
    .venv/bin/python benchmarks/bench_face_oneshot.py train --loss siamese --epochs 4 --out /tmp/siamese.pt
    .venv/bin/python benchmarks/bench_face_oneshot.py openset runs/faces/best.safetensors

`train` fits the CPU default encoder (face_embedder_small) on the 2000 training identities with P x K = 16 x 4
batches, AdamW and a one-cycle schedule, and prints one-shot 20-way top-1 on the 200 test identities after every
epoch, beside raw-pixel nearest neighbour. `openset` enrols 100 test identities (one image each, and
the mean of three), queries their other images and every image of 100 never-enrolled test identities; tau is
chosen on 200 validation identities (the distance that answers "unknown" for 95% of never-enrolled ones there).
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
from cnnkit.face.sampler import PKSampler  # noqa: E402
from cnnkit.face.siamese import SiameseLoss  # noqa: E402
from cnnkit.face.task import MARGIN  # noqa: E402
from cnnkit.machine import cpu_name  # noqa: E402
from cnnkit.models import create_model  # noqa: E402


@torch.no_grad()
def embed(model, ds, flip: bool = False) -> np.ndarray:
    """Embeddings of a split; flip: the normalised mean of the image's and its mirror's."""
    model.eval()
    out = torch.cat([model(ds._x[i : i + 500]) for i in range(0, len(ds), 500)])
    if flip:
        out = out + torch.cat([model(ds._x[i : i + 500].flip(3)) for i in range(0, len(ds), 500)])
        out = out / out.norm(dim=1, keepdim=True)
    model.train()
    return out.numpy()


def train(args) -> None:
    torch.manual_seed(args.seed)
    tr, te = load_faces("train"), load_faces("test")
    raw = oneshot_accuracy(te.images.reshape(len(te), -1).astype(np.float32), te.labels)
    model = create_model("face_embedder_small")
    if args.loss == "triplet":
        crit = TripletLoss(MARGIN, miner=AllTripletsMiner(active_only=True, margin=MARGIN), reduction="mean")
    else:
        crit = SiameseLoss(64, args.variant)
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
    # nearest of more enrolled identities is nearer, and a tau chosen against fewer lets more strangers in
    va, te = load_faces("val", identities=200), load_faces("test")
    print(f"{cpu_name()}; 100 enrolled test identities, queries: their other 9 images each; 100 never-enrolled "
          "identities, all 10 images each; tau chosen on 200 validation identities the same way")
    for flip in (False, True):
        ev, et = embed(model, va, flip), embed(model, te, flip)
        for k in (1, 3):
            _, enr, _, _, unk = _open_split(ev, va.labels, k)
            tau = float(np.quantile(_nearest(unk, enr)[0], 0.05))  # 95% of the strangers answered "unknown"
            names, enr, known, known_y, unknown = _open_split(et, te.labels, k)
            dk, ik = _nearest(known, enr)
            du, _ = _nearest(unknown, enr)
            right = names[ik] == known_y
            oracle = float(np.quantile(du, 0.05))
            print(f"enrolment {k} image{'s' if k > 1 else ' '}, flip-averaged {'yes' if flip else 'no '}: "
                  f"tau {tau:.4f}: recognised {np.mean(right & (dk <= tau)):.3f}, unknown {np.mean(du > tau):.3f}"
                  f" | closed-set 100-way top-1 {right.mean():.3f} | tau for 95% unknown on the test itself "
                  f"({oracle:.4f}): recognised {np.mean(right & (dk <= oracle)):.3f}")


def _open_split(e: np.ndarray, labels: np.ndarray, k: int):
    """Identities [0, 100) enrolled with the mean of their first k embeddings, their other images as queries;
    identities [100, 200) never enrolled, all their images as queries."""
    ids = np.unique(labels)
    idx = {i: np.flatnonzero(labels == i) for i in ids}
    enrolled, strangers = ids[:100], ids[100:200]
    gallery = np.stack([e[idx[i][:k]].mean(0) for i in enrolled])
    gallery /= np.linalg.norm(gallery, axis=1, keepdims=True)
    q = np.concatenate([idx[i][k:] for i in enrolled])
    u = np.concatenate([idx[i] for i in strangers])
    return enrolled, gallery, e[q], labels[q], e[u]


def _nearest(queries: np.ndarray, gallery: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distance to, and index of, each query's nearest gallery row (the database's search)."""
    from cnnkit.face.database import nearest_rows

    d2, i = nearest_rows(queries.astype(np.float32), gallery.astype(np.float32))
    return np.sqrt(np.maximum(d2, 0)), i


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

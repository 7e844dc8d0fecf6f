"""Tour: faces. Detection with landmarks (MTCNN), alignment, one-shot verification and recognition with dlib's
face ResNet, and training an encoder of one's own with the triplet loss on the built-in `faces` identities.

Every claim in the prose is computed from this run's numbers.
"""

from __future__ import annotations

import time

import numpy as np

from cnnkit.threads import torch_threads

TITLE = "Faces: detection, one-shot verification and recognition, triplet loss"
ORDER = 150


def _photos() -> dict[str, np.ndarray]:
    import matplotlib.cbook
    import skimage.data
    from PIL import Image

    with Image.open(matplotlib.cbook.get_sample_data("grace_hopper.jpg")) as im:
        grace = np.asarray(im.convert("RGB"))
    return {"Eileen Collins (astronaut)": skimage.data.astronaut(), "Grace Hopper": grace}


def _alterations(img: np.ndarray, quick: bool) -> dict[str, np.ndarray]:
    h, w = img.shape[:2]
    out = {
        "mirrored": img[:, ::-1],
        "darker (x0.5)": (img * 0.5).astype(np.uint8),
    }
    if not quick:
        out["cropped (centre 70%)"] = img[int(0.05 * h): int(0.75 * h), int(0.15 * w): int(0.85 * w)]
        out["brighter, warm cast"] = np.clip(img * 1.3 + np.array([20, 5, -10]), 0, 255).astype(np.uint8)
        out["half size"] = img[::2, ::2]
    return {k: np.ascontiguousarray(v) for k, v in out.items()}


def train_triplet(n_ids: int, n_img: int, steps: int, seed: int = 0):
    """A face_embedder_small trained for `steps` P x K = 16 x 4 batches on `n_ids` training identities.

    Returns (model, history of (step, loss, active share)).
    """
    import torch

    from cnnkit.face.data import load_faces
    from cnnkit.face.losses import AllTripletsMiner, TripletLoss
    from cnnkit.face.sampler import PKSampler
    from cnnkit.models import create_model

    torch.manual_seed(seed)
    tr = load_faces("train", identities=n_ids, images_per_identity=n_img)
    model = create_model("face_embedder_small", width=16)
    crit = TripletLoss(0.2, miner=AllTripletsMiner(active_only=True), reduction="mean")
    opt = torch.optim.AdamW(model.parameters(), 3e-3, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 3e-3, total_steps=steps)
    sampler, history, step = PKSampler(tr.labels, 16, 4, seed=seed), [], 0
    while step < steps:
        sampler.set_epoch(step)
        for b in sampler:
            loss = crit(model(tr._x[b]), torch.from_numpy(tr.labels[b]))
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            s = crit.last_stats
            history.append((step, loss.item(), s["active"] / max(s["triplets"], 1)))
            step += 1
            if step >= steps:
                break
    return model.eval(), history


def digits_experiment(seed: int = 0, steps: int = 300):
    """Triplet encoder trained on digits 0-4, one-shot 5-way on the unseen digits 5-9, against raw pixels."""
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
    from sklearn.datasets import load_digits

    from cnnkit.face.losses import AllTripletsMiner, TripletLoss
    from cnnkit.face.oneshot import oneshot_accuracy
    from cnnkit.face.sampler import PKSampler

    d = load_digits()
    x = torch.from_numpy(d.images.astype(np.float32) / 16.0)[:, None]  # (N, 1, 8, 8)
    y = d.target
    seen, unseen = y < 5, y >= 5
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(),
                        nn.MaxPool2d(2), nn.Flatten(), nn.Linear(32 * 16, 32))
    crit = TripletLoss(0.2, miner=AllTripletsMiner(active_only=True), reduction="mean")
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    xs, ys = x[seen], y[seen]
    sampler, step = PKSampler(ys, 5, 8, seed=seed), 0
    while step < steps:
        sampler.set_epoch(step)
        for b in sampler:
            loss = crit(F.normalize(net(xs[b]), dim=1), torch.from_numpy(ys[b]))
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
            if step >= steps:
                break
    with torch.no_grad():
        emb = F.normalize(net(x[unseen]), dim=1).numpy()
    enc = oneshot_accuracy(emb, y[unseen], n_way=5, episodes=400, seed=seed)
    raw = oneshot_accuracy(x[unseen].reshape(int(unseen.sum()), -1).numpy(), y[unseen], n_way=5, episodes=400,
                           seed=seed)
    return enc, raw


def build(section, ctx) -> None:
    import matplotlib.pyplot as plt

    from cnnkit.face.encoder import DlibEncoder
    from cnnkit.face.recognize import FacePipeline
    from cnnkit.face.verify import distance
    from cnnkit.viz.draw import draw_annotations

    t0 = time.perf_counter()
    section.text(
        "Face verification answers \"is this the claimed person?\" with a distance under a threshold; recognition "
        "answers \"who is this?\" with the nearest enrolled person, or \"unknown\" when even the nearest is too "
        "far. Both need one enrolment photo per person, because the network is not a classifier of those people: "
        "it is an encoder f(x) trained so that photos of one person land close together and photos of different "
        "people far apart. The pipeline: MTCNN finds faces and 5 landmarks, a similarity transform aligns each "
        "face to a 150x150 chip, dlib's ResNet maps the chip to 128 numbers, and distances decide."
    )
    with torch_threads(1):
        photos = _photos()
        pipe = FacePipeline(DlibEncoder())
        tau = pipe.encoder.default_tau
        enrolled, panels = {}, []
        for name, img in photos.items():
            face = pipe.faces(img, name=name, one=True)[0]
            enrolled[name] = face.embedding
            panels.append(draw_annotations(img, {"boxes": face.box[None], "keypoints": face.landmarks[None],
                                                 "labels": np.zeros(1, np.int64)}, ["face"], scale=1.0))
            panels.append(face.chip)
        fig, axes = plt.subplots(1, 4, figsize=(13, 3.6), gridspec_kw={"width_ratios": [1.3, 0.6, 1.3, 0.6]})
        for ax, p, title in zip(axes, panels, ["MTCNN box, 5 landmarks", "aligned chip", "MTCNN box, 5 landmarks",
                                               "aligned chip"], strict=True):
            ax.imshow(p)
            ax.set_title(title, fontsize=9)
            ax.axis("off")
        fig.tight_layout()
        section.figure(fig, "detect", "Faces and landmarks found on scikit-image's astronaut and matplotlib's Grace "
                       "Hopper photo, and the chips they are aligned to (the eyes, nose and mouth land where dlib's "
                       "mean face has them).")
        section.code("cnnkit face detect photo.jpg -o faces.png --json")

        rows, right, total = [], 0, 0
        for name, img in photos.items():
            for what, alt in _alterations(img, ctx.quick).items():
                found = pipe.faces(alt, name=what, one=False, largest=True)
                if not found:
                    rows.append([name, what, "no face found", "-", tau])
                    total += 1
                    continue
                d = {n: distance(found[0].embedding, e) for n, e in enrolled.items()}
                best = min(d, key=d.get)
                answer = best if d[best] <= tau else "unknown"
                right += answer == name
                total += 1
                rows.append([name, what, answer, f"{d[best]:.3f}", tau])
        others = {"cameraman (scikit-image)": "camera", "a cat (chelsea)": "chelsea", "coffee cup": "coffee"}
        if ctx.quick:
            others = {"a cat (chelsea)": "chelsea"}
        import skimage.data

        n_unknown = 0
        for label, fn in others.items():
            img = getattr(skimage.data, fn)()
            found = pipe.faces(img, name=label, one=False, largest=True)
            if not found:
                rows.append(["(not enrolled)", label, "no face found", "-", tau])
                n_unknown += 1
                continue
            d = {n: distance(found[0].embedding, e) for n, e in enrolled.items()}
            best = min(d, key=d.get)
            answer = best if d[best] <= tau else "unknown"
            n_unknown += answer == "unknown"
            rows.append(["(not enrolled)", label, answer, f"{d[best]:.3f}", tau])
        between = distance(*enrolled.values())
        section.table(rows, ["who", "photo", "answer", "distance to nearest", "threshold"],
                      caption="Each person enrolled from one photo; altered photos recognised by the nearest "
                              "enrolled embedding within the threshold (dlib's 0.6)")
        section.text(
            f"{right} of {total} altered photos are recognised as the right person, and {n_unknown} of "
            f"{len(others)} photos of people or things never enrolled are answered \"unknown\" or \"no face\". "
            f"The two enrolled women are {between:.3f} apart, "
            + ("beyond" if between > tau else "within") + f" the threshold {tau}."
        )
        section.code("cnnkit face enroll --db faces.db grace grace_hopper.jpg\n"
                     "cnnkit face verify --db faces.db --as grace door_camera.jpg   # distance and threshold shown\n"
                     "cnnkit face identify --db faces.db crowd.jpg --all-faces")

        # own encoder on the built-in faces
        from cnnkit.face.data import load_faces
        from cnnkit.face.embed import embed_images
        from cnnkit.face.oneshot import oneshot_accuracy

        n_ids, steps = (100, 60) if ctx.quick else (300, 250)
        t1 = time.perf_counter()
        model, hist = train_triplet(n_ids, 8, steps, seed=ctx.seed)
        train_s = time.perf_counter() - t1
        te = load_faces("test", identities=100)
        meta = {"input_size": [3, 32, 32], "mean": list(te.mean), "std": list(te.std)}
        emb = embed_images(model, list(te.images), meta)
        acc = oneshot_accuracy(emb, te.labels, n_way=20, episodes=200, seed=ctx.seed)
        raw = oneshot_accuracy(te.images.reshape(len(te), -1).astype(np.float32), te.labels, n_way=20,
                               episodes=200, seed=ctx.seed)
        examples = te.images[np.searchsorted(te.labels, np.arange(6)) + 0]
        examples2 = te.images[np.searchsorted(te.labels, np.arange(6)) + 1]
        section.image(np.concatenate([np.concatenate(list(examples), 1), np.concatenate(list(examples2), 1)], 0)
                      .repeat(3, 0).repeat(3, 1), "faces_data",
                      "The built-in `faces`: two images each of six test identities (columns). Pose, size, place, "
                      "light, expression, occlusion, noise and background change from image to image; face shape, "
                      "features, hair, skin and accessories stay with the identity.")
        dig_enc, dig_raw = digits_experiment(ctx.seed, steps=150 if ctx.quick else 300)

        # distances of same vs different identities, and the training curve
        labels = te.labels
        dd = np.sqrt(((emb[:, None] - emb[None]) ** 2).sum(-1))
        iu = np.triu_indices(len(labels), 1)
        same = labels[iu[0]] == labels[iu[1]]
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 3.6))
        a1.hist(dd[iu][~same], bins=50, alpha=0.6, density=True, label="different identities")
        a1.hist(dd[iu][same], bins=50, alpha=0.6, density=True, label="same identity")
        a1.set_xlabel("distance between embeddings")
        a1.set_title("Held-out identities: distance histograms")
        a1.legend(fontsize=8)
        h = np.array(hist)
        a2.plot(h[:, 0], h[:, 1], label="loss (mean over active triplets)")
        a2b = a2.twinx()
        a2b.plot(h[:, 0], h[:, 2], color="C1", label="share of active triplets")
        a2b.set_ylim(0, 1.05)
        a2.set_xlabel("step (16 identities x 4 images)")
        a2.set_title("Triplet training")
        a2.legend(loc="lower left", fontsize=8)
        a2b.legend(loc="upper right", fontsize=8)
        fig.tight_layout()
        section.figure(fig, "triplet", "Left: distances between test embeddings of the same identity and of "
                       "different identities. Right: the loss and the share of triplets that still violate the "
                       "margin (the ones that teach anything) fall as training goes on.")
    overlap = float(np.mean(dd[iu][~same] < np.quantile(dd[iu][same], 0.9)))
    section.table([
        ["faces: encoder trained on " + str(n_ids) + " identities, " + f"{steps} steps ({train_s:.0f} s)",
         "20-way, 100 unseen identities", f"{acc:.3f}", f"{raw:.3f}"],
        ["digits: encoder trained on digits 0-4", "5-way, unseen digits 5-9", f"{dig_enc:.3f}", f"{dig_raw:.3f}"],
    ], ["encoder", "one-shot test", "top-1 with the encoder", "top-1 nearest raw pixels"],
        caption="One-shot recognition: one enrolment image per identity, another image of each to recognise")
    faces_word = "beats" if acc > raw else "does not beat"
    dig_word = "better" if dig_enc > dig_raw else "worse"
    section.text(
        f"With many training identities the encoder {faces_word} raw pixels on faces it never saw ({acc:.1%} vs "
        f"{raw:.1%}, 20-way); trained on only five digit classes, it recognises the five unseen digits {dig_word} "
        f"than raw pixels ({dig_enc:.1%} vs {dig_raw:.1%}, 5-way)"
        + (": too few training identities do not teach what makes any two of them differ. " if dig_enc <= dig_raw
           else ". ")
        + f"{overlap:.0%} of different-identity pairs are closer than the 90th percentile of same-identity pairs. "
        + ("(Quick mode: a short run; " if ctx.quick else "(A short run for the tour; ")
        + "`cnnkit train --model face_embedder_small --data faces` trains the full encoder, and "
        "`cnnkit evaluate RUN/best.safetensors --data faces --json` reports its oneshot_top1_20way.)"
    )
    section.code("cnnkit train --model face_embedder_small --data faces --out runs/faces\n"
                 "cnnkit evaluate runs/faces/best.safetensors --data faces --json")
    section.text(f"Section time: {time.perf_counter() - t0:.0f} s.")

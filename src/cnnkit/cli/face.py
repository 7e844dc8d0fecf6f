"""`cnnkit face`: detect, enrol, verify, identify, choose a threshold, list, remove, embed.

    cnnkit face detect photo.jpg -o faces.png --json
    cnnkit face enroll --db faces.db alice alice1.jpg alice2.jpg
    cnnkit face verify --db faces.db --as alice door.jpg        # exit 0 verified, 1 not verified, 2 error
    cnnkit face identify --db faces.db door.jpg crowd.jpg
    cnnkit face threshold lfw/pairs.txt --root lfw/
    cnnkit face list --db faces.db
    cnnkit face remove --db faces.db alice
    cnnkit face embed chip1.png chip2.png --aligned --json

The encoder is dlib's face ResNet unless --encoder names a model file from `cnnkit train`; a database keeps
the encoder it was made with and refuses another. Every answer shows the distance and the threshold.
"""

from __future__ import annotations

import argparse
import json

from cnnkit.cli.common import positive_float


def register(subparsers) -> None:
    p = subparsers.add_parser("face", help="face detection, enrolment, verification, identification, thresholds",
                              description=__doc__.split("\n\n", 1)[1].rsplit("\n\n", 1)[0],
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="face_command", metavar="ACTION", parser_class=type(p))
    sub.required = True

    def common(q, db=True, tau=False, one=False, aligned=True):
        if db:
            q.add_argument("--db", required=True, help="the enrolment database (SQLite file)")
        q.add_argument("--encoder", default=None,
                       help="'dlib' or a model file from cnnkit train (default: the database's, else dlib)")
        if tau:
            q.add_argument("--tau", type=positive_float, default=None,
                           help="distance threshold (default: the encoder's: 0.6 for dlib)")
        if one:
            q.add_argument("--largest", action="store_true", help="several faces in a photo: use the largest")
        if aligned:
            q.add_argument("--aligned", action="store_true", help="the images are aligned face chips: no detection")
        q.add_argument("--json", action="store_true", help="print JSON")

    q = sub.add_parser("detect", help="faces and 5 landmarks in a photo (MTCNN)")
    q.add_argument("image", metavar="IMG")
    q.add_argument("-o", "--out", default=None, help="write the photo with boxes and landmarks drawn")
    q.add_argument("--min-face", type=int, default=20, help="smallest face side searched, pixels")
    q.add_argument("--json", action="store_true", help="print JSON")
    q.set_defaults(func=run_detect)

    q = sub.add_parser("enroll", help="add a person's photos to the database")
    q.add_argument("name", metavar="NAME")
    q.add_argument("images", nargs="+", metavar="IMG")
    common(q, one=True)
    q.set_defaults(func=run_enroll)

    q = sub.add_parser("verify", help="is this NAME? (exit 0 verified, 1 not verified)")
    q.add_argument("--as", dest="claimed", required=True, metavar="NAME")
    q.add_argument("image", metavar="IMG")
    common(q, tau=True, one=True)
    q.set_defaults(func=run_verify)

    q = sub.add_parser("identify", help="who is in these photos? (nearest enrolled within tau, else unknown)")
    q.add_argument("images", nargs="+", metavar="IMG")
    common(q, tau=True, one=True)
    q.add_argument("--all-faces", action="store_true", help="answer for every face of each photo")
    q.set_defaults(func=run_identify)

    q = sub.add_parser("threshold", help="ROC, EER, TAR at FAR, LFW 10-fold accuracy on labelled pairs")
    q.add_argument("pairs", nargs="+", metavar="PAIRS", help="pairs files in LFW's pairs.txt layout")
    q.add_argument("--root", default=None, help="image folder (default: each pairs file's folder)")
    q.add_argument("--ext", default=".jpg", help="image file extension")
    common(q, db=False)
    q.set_defaults(func=run_threshold)

    q = sub.add_parser("list", help="enrolled identities")
    q.add_argument("--db", required=True)
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=run_list)

    q = sub.add_parser("remove", help="delete an identity")
    q.add_argument("name", metavar="NAME")
    q.add_argument("--db", required=True)
    q.set_defaults(func=run_remove)

    q = sub.add_parser("embed", help="face descriptors of photos (largest face) or of aligned chips")
    q.add_argument("images", nargs="+", metavar="IMG")
    common(q, db=False, one=True)
    q.set_defaults(func=run_embed)


# ------------------------------------------------------------------------------------------------ helpers
def _encoder_for(args, db_model=None):
    from cnnkit.errors import InputError
    from cnnkit.face.encoder import load_encoder

    spec = args.encoder
    if spec is None:
        if db_model is not None and db_model.name != "dlib_face_resnet":
            raise InputError(f"{args.db} holds embeddings of {db_model.describe()}; pass that model file with "
                             "--encoder")
        spec = "dlib"
    return load_encoder(spec)


def _tau(args, encoder) -> float:
    from cnnkit.errors import InputError

    tau = args.tau if args.tau is not None else encoder.default_tau
    if tau is None:
        raise InputError("this encoder has no recorded threshold; pass --tau (choose one with cnnkit face threshold)")
    return float(tau)


def _embeddings(args, pipeline, path: str, *, one: bool = True):
    """[(embedding, sha256)] of the face(s) of one file."""
    import hashlib

    from cnnkit.io import read_image

    img = read_image(path)
    sha = hashlib.sha256(open(path, "rb").read()).hexdigest()
    if getattr(args, "aligned", False):
        return [(pipeline.encoder.embed_chips([img])[0], sha, None)]
    faces = pipeline.faces(img, name=path, one=one, largest=getattr(args, "largest", False))
    return [(f.embedding, sha, f) for f in faces]


def _pipeline(args):
    """The pipeline of the database's encoder (or --encoder / dlib for a new database)."""
    from pathlib import Path

    from cnnkit.face.database import FaceDatabase
    from cnnkit.face.recognize import FacePipeline

    existing = None
    if Path(args.db).exists():
        with FaceDatabase(args.db) as db:  # the recorded model (a corrupt file raises here, one line)
            existing = db.model
    return FacePipeline(_encoder_for(args, existing))


def _open_db(args, *, create: bool = False):
    from cnnkit.face.database import FaceDatabase

    pipe = _pipeline(args)
    return FaceDatabase(args.db, pipe.encoder.info, create=create), pipe


# ----------------------------------------------------------------------------------------------- commands
def run_detect(args) -> int:
    import numpy as np

    from cnnkit.face.mtcnn import MTCNN
    from cnnkit.io import read_image, save_image

    img = read_image(args.image)
    det = MTCNN(min_face_size=args.min_face).detect(img)
    if args.out:
        from cnnkit.viz.draw import draw_annotations

        pic = draw_annotations(img, {"boxes": det.boxes, "scores": det.scores, "keypoints": det.landmarks,
                                     "labels": np.zeros(len(det), np.int64)}, ["face"], scale=1.0)
        save_image(args.out, pic)
    if args.json:
        print(json.dumps({"image": args.image, "faces": det.to_json()}, indent=2))
    else:
        print(f"{args.image}: {len(det)} face(s)" + ("" if len(det) else " (none found)"))
        for f in det.to_json():
            print(f"  box {f['box']}  score {f['score']:.4f}  landmarks {f['landmarks']}")
    return 0


def run_enroll(args) -> int:
    from cnnkit.face.database import FaceDatabase

    pipe = _pipeline(args)
    embs, shas = [], []
    for path in args.images:  # every photo checked before the database is touched: all or none
        for e, sha, _ in _embeddings(args, pipe, path):
            embs.append(e)
            shas.append(sha)
    with FaceDatabase(args.db, pipe.encoder.info, create=True) as db:
        n = db.enroll(args.name, embs, shas)
        total = {name: c for name, c, _ in db.identities()}[args.name.strip()]
        print(f"enrolled {args.name}: {n} image(s) added, {total} in {args.db} ({db.model.describe()})")
    return 0


def run_verify(args) -> int:
    from cnnkit.face.verify import verify_against

    db, pipe = _open_db(args)
    with db:
        tau = _tau(args, pipe.encoder)
        db.embeddings_of(args.claimed)  # an unknown name fails before any detection work
        e, _, _ = _embeddings(args, pipe, args.image)[0]
        v = verify_against(db, args.claimed, e, tau)
    print(json.dumps({"image": args.image, **v.to_json()}) if args.json else f"{args.image}: {v.describe()}")
    return 0 if v.verified else 1


def run_identify(args) -> int:
    from cnnkit.errors import InputError
    from cnnkit.face.recognize import identify

    db, pipe = _open_db(args)
    out = []
    with db:
        tau = _tau(args, pipe.encoder)
        for path in args.images:
            found = _embeddings(args, pipe, path, one=False)  # no face is an answer here, not an error
            if len(found) > 1 and not args.all_faces:
                if not args.largest:
                    raise InputError(f"{path}: {len(found)} faces found where one is expected; pass --largest to "
                                     "use the largest or --all-faces to answer for each")
                area = [(f[2].box[2] - f[2].box[0]) * (f[2].box[3] - f[2].box[1]) for f in found]
                found = [found[int(max(range(len(area)), key=area.__getitem__))]]
            if not found:
                out.append({"image": path, "identity": None, "faces": 0})
                if not args.json:
                    print(f"{path}: no face found")
                continue
            for (_, _, face), r in zip(found, identify(db, [f[0] for f in found], tau), strict=True):
                item = {"image": path, **r.to_json()}
                if face is not None:
                    item["box"] = [round(float(v), 1) for v in face.box]
                out.append(item)
                if not args.json:
                    where = f" face at {item['box']}" if args.all_faces and face is not None else ""
                    print(f"{path}{where}: {r.describe()}")
    if args.json:
        print(json.dumps(out, indent=2))
    return 0


def run_threshold(args) -> int:
    import numpy as np

    from cnnkit.face.recognize import FacePipeline
    from cnnkit.face.threshold import lfw_folds, read_pairs, report
    from cnnkit.face.verify import distance

    pairs = [p for f in args.pairs for p in read_pairs(f, root=args.root, ext=args.ext)]
    encoder = _encoder_for(args)
    pipe = FacePipeline(encoder)
    cache: dict[str, np.ndarray] = {}

    def emb(path):
        if path not in cache:
            args.largest = True  # a pairs file's photos may hold bystanders: the largest face is the subject
            cache[path] = _embeddings(args, pipe, path)[0][0]
        return cache[path]

    d = np.array([distance(emb(p.first), emb(p.second)) for p in pairs])
    same = np.array([p.same for p in pairs])
    rep = report(d, same)
    folds = lfw_folds(d, same, np.array([p.fold for p in pairs])) if len({p.fold for p in pairs}) > 1 else None
    if args.json:
        print(json.dumps({**rep, "lfw": folds, "encoder": encoder.info.describe()}, indent=2))
        return 0
    print(f"{rep['pairs']} pairs ({rep['same']} same), encoder {encoder.info.describe()}")
    print(f"  EER {rep['eer']:.4f} at threshold {rep['eer_tau']:.4f}")
    for far in ("0.01", "0.001"):
        print(f"  TAR at FAR {far}: {rep[f'tar_at_far_{far}']:.4f} (threshold {rep[f'tau_at_far_{far}']:.4f})")
    print(f"  best accuracy {rep['best_accuracy']:.4f} at threshold {rep['best_tau']:.4f}")
    if folds:
        print(f"  {len(folds['folds'])}-fold accuracy (threshold chosen on the other folds): "
              f"{folds['accuracy']:.4f} +- {folds['std']:.4f}")
    return 0


def run_list(args) -> int:
    from cnnkit.face.database import FaceDatabase  # NumPy and SQLite only: no torch

    with FaceDatabase(args.db) as db:
        rows = db.identities()
        if args.json:
            print(json.dumps({"model": db.model.describe(),
                              "identities": [{"name": n, "images": c, "enrolled": d} for n, c, d in rows]}, indent=2))
        else:
            print(f"{args.db}: {len(rows)} identities, {sum(r[1] for r in rows)} images, {db.model.describe()}")
            for name, count, date in rows:
                print(f"  {name:<24} {count:>4} image(s)  since {date}")
    return 0


def run_remove(args) -> int:
    from cnnkit.face.database import FaceDatabase

    with FaceDatabase(args.db) as db:
        n = db.remove(args.name)
    print(f"removed {args.name}: {n} image(s)")
    return 0


def run_embed(args) -> int:
    from cnnkit.face.recognize import FacePipeline

    encoder = _encoder_for(args)
    pipe = FacePipeline(encoder)
    out = []
    for path in args.images:
        e, sha, face = _embeddings(args, pipe, path)[0]
        out.append({"image": path, "sha256": sha, "embedding": [round(float(v), 7) for v in e]})
    if args.json:
        print(json.dumps({"encoder": encoder.info.describe(), "embeddings": out}))
    else:
        for item in out:
            v = item["embedding"]
            print(f"{item['image']}: {len(v)}-d [{', '.join(f'{x:.4f}' for x in v[:4])} ...]")
    return 0

"""`cnnkit predict`: the most likely classes of images, with probabilities.

    cnnkit predict runs/lenet/best.safetensors seven.png --topk 3
"""

from __future__ import annotations

import json

from cnnkit.cli.common import positive_int


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "predict", help="classify images with a checkpoint (class names and probabilities)",
        description="Classify image files with a cnnkit checkpoint. Each image is read, converted to the "
                    "checkpoint's channels, resized to its input size and normalised with its mean/std, "
                    "exactly as the training images were.",
    )
    p.add_argument("checkpoint", help="cnnkit model file (.safetensors) written by `cnnkit train`")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files")
    p.add_argument("--topk", type=positive_int, default=5, help="classes to show per image (default 5)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run)


def preprocess(paths: list[str], meta: dict):
    """Image files as the model's input batch (N, C, H, W): decoded and resized the way training data was.

    Raises:
        MissingFileError, FileFormatError: a path is missing or not a readable image (named in the message).
    """
    import numpy as np
    import torch
    from PIL import Image

    from cnnkit.data.dataset import FileStore
    from cnnkit.io import require_file

    c, h, w = (meta.get("input_size") or [3, None, None])[:3]
    files = [require_file(p) for p in paths]
    if h is not None and h == w:
        store = FileStore(files, c, h)  # the decoder cnnkit's image folders use, so inputs match training's
        arrays = [store.read(i) for i in range(len(files))]
    else:
        arrays = []
        for f in files:
            from cnnkit.io import read_image

            img = Image.fromarray(read_image(f, mode="L" if c == 1 else "RGB"))
            if h is not None:
                img = img.resize((w, h), Image.BILINEAR)
            a = np.asarray(img)
            arrays.append(a[:, :, None] if a.ndim == 2 else a)
    x = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float().div_(255.0)  # (N, C, H, W)
    mean = torch.tensor(meta.get("mean") or [0.0] * c).view(1, -1, 1, 1)
    std = torch.tensor(meta.get("std") or [1.0] * c).view(1, -1, 1, 1)
    return (x - mean) / std


def run(args) -> int:
    import torch

    from cnnkit.checkpoint import load_model_file

    model, meta = load_model_file(args.checkpoint)
    x = preprocess(args.images, meta)
    with torch.no_grad():
        probs = torch.softmax(model(x).float(), dim=1)
    classes = meta.get("classes") or [str(i) for i in range(probs.shape[1])]
    k = min(args.topk, probs.shape[1])
    top = probs.topk(k, dim=1)
    results = []
    for path, values, indices in zip(args.images, top.values.tolist(), top.indices.tolist(), strict=True):
        results.append({"image": path, "predictions": [{"class": classes[i], "probability": round(v, 6)}
                                                       for v, i in zip(values, indices, strict=True)]})
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    for r in results:
        best = ", ".join(f"{p['class']} {p['probability']:.3f}" for p in r["predictions"])
        print(f"{r['image']}: {best}")
    return 0

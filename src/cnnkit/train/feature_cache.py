"""Train a new head on features computed once: the frozen backbone's outputs, cached on disk.

With a frozen backbone (in eval mode, no augmentation) every epoch would compute the same features again;
the curriculum's trick is to compute them once, save them, and train the head on the saved arrays. The
cache file is keyed by a hash of the backbone's weights and of the data (every image and label, in
order), so a changed backbone or changed data is never served stale features: it simply gets a new file.

    apply_transfer(model, weights="pretrained.safetensors", num_classes=5, freeze="backbone")
    result = fit_head_on_cache(model, train, val, TrainConfig(epochs=30), cache_dir="cache")

The file is `<cache_dir>/features-<key>.safetensors` holding "features" (N, C, h, w) float32 — the output of
`forward_features` — and "labels" (N,) int64, written atomically.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
from torch.utils.data import DataLoader, TensorDataset

from cnnkit.errors import InputError
from cnnkit.io import atomic_write
from cnnkit.train.transfer import split_parameters, stage_modules

log = logging.getLogger("cnnkit.feature_cache")

CACHE_FORMAT = 1  # part of the key: a change in what the file holds invalidates old files


class FeatureDataset(TensorDataset):
    """Cached features and labels, as a Dataset of (features (C, h, w), label) pairs.

    Attributes:
        features: (N, C, h, w) float32.
        labels: (N,) int64.
        key: the hash the cache file is named by.
        path: the cache file (None when built without a cache folder).
        from_cache: True when read from an existing file, False when computed now.
        classes: the class names of the source data, when it has them.
    """

    def __init__(self, features: torch.Tensor, labels: torch.Tensor, *, key: str, path: Path | None,
                 from_cache: bool, classes: list[str] | None = None):
        super().__init__(features, labels)
        self.features, self.labels = features, labels
        self.key, self.path, self.from_cache = key, path, from_cache
        if classes is not None:
            self.classes = list(classes)


class HeadOnly(nn.Module):
    """`model.forward_head` as a model of its own: it maps cached features to logits.

    Its state dict is the wrapped model's (same keys), so checkpoints written while training it are files of
    the whole model and load with `cnnkit.checkpoint.load_model_file`.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.model.forward_head(features)

    def state_dict(self, *args, **kwargs):
        return self.model.state_dict(*args, **kwargs)

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        return self.model.load_state_dict(state_dict, strict=strict, assign=assign)


def _batches(data, batch_size: int):
    if isinstance(data, DataLoader):
        raise InputError("feature caching needs a Dataset (a fixed order of samples), not a DataLoader")
    # no shuffling and no workers: the order is the data set's, so features line up with their labels
    return DataLoader(data, batch_size=batch_size, shuffle=False, num_workers=0)


def backbone_hash(model: nn.Module) -> str:
    """sha256 of everything `forward_features` depends on: the stages' parameters and buffers, with names."""
    h = hashlib.sha256(type(model).__name__.encode())
    for i, stage in enumerate(stage_modules(model)):
        for name, t in sorted(stage.state_dict().items()):
            h.update(f"{i}.{name}:{t.dtype}:{tuple(t.shape)}".encode())
            h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def data_hash(data, *, batch_size: int = 256) -> str:
    """sha256 of every (image, label) of `data`, in order (one pass over the data, no model involved)."""
    h = hashlib.sha256()
    n = 0
    for x, y in _batches(data, batch_size):
        h.update(f"{tuple(x.shape[1:])}:{x.dtype}".encode())
        h.update(x.contiguous().numpy().tobytes())
        h.update(torch.as_tensor(y, dtype=torch.int64).numpy().tobytes())
        n += len(x)
    h.update(str(n).encode())
    return h.hexdigest()


def cache_key(model: nn.Module, data, *, batch_size: int = 256) -> str:
    """The key of the features of `model`'s backbone on `data`: hash of format, backbone and data."""
    h = hashlib.sha256(f"cnnkit-features-v{CACHE_FORMAT}".encode())
    h.update(backbone_hash(model).encode())
    h.update(data_hash(data, batch_size=batch_size).encode())
    return h.hexdigest()


@torch.no_grad()
def compute_features(model: nn.Module, data, *, batch_size: int = 256,
                     progress: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """`forward_features` of every sample of `data`, in order, in eval mode.

    Returns:
        features (N, C, h, w) float32 and labels (N,) int64.
    """
    from tqdm.auto import tqdm

    was_training = model.training
    model.eval()
    feats, labels = [], []
    device = next(model.parameters()).device
    try:
        for x, y in tqdm(_batches(data, batch_size), desc="features", unit="batch", disable=not progress,
                         leave=False):
            feats.append(model.forward_features(x.to(device)).float().cpu())
            labels.append(torch.as_tensor(y, dtype=torch.int64))
    finally:
        model.train(was_training)
    if not feats:
        raise InputError("cannot compute features of an empty data set")
    return torch.cat(feats), torch.cat(labels)


def _read(path: Path, key: str) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The cached arrays, or None when the file is missing, damaged or holds another key."""
    from safetensors import safe_open

    if not path.is_file():
        return None
    try:
        with safe_open(str(path), framework="pt") as f:
            if (f.metadata() or {}).get("key") != key:
                return None
            return f.get_tensor("features"), f.get_tensor("labels")
    except Exception as e:  # a damaged file is just a cache miss: it is computed and written again
        log.warning("feature cache %s is unreadable (%s); computing the features again", path, e)
        return None


def _write(path: Path, features: torch.Tensor, labels: torch.Tensor, key: str, extra: dict[str, str]) -> None:
    from safetensors.torch import save

    data = save({"features": features.contiguous(), "labels": labels.contiguous()},
                metadata={"key": key, "format": str(CACHE_FORMAT), **extra})
    with atomic_write(path) as f:
        f.write(data)


def _check_frozen(model: nn.Module) -> None:
    split = split_parameters(model)
    params = dict(model.named_parameters())
    trainable = [n for names in split.stages for n in names if params[n].requires_grad]
    if trainable:
        raise InputError(f"the backbone is not frozen ({len(trainable)} trainable tensors, e.g. {trainable[0]}); "
                         "cached features are only valid for a frozen backbone: apply_transfer(freeze='backbone') "
                         "without finetune_last")


def cached_features(model: nn.Module, data, cache_dir: str | os.PathLike | None, *, batch_size: int = 256,
                    progress: bool = True) -> FeatureDataset:
    """The backbone's features on `data`: read from `cache_dir` when a file of the same key is there, else
    computed (and written there).

    Args:
        model: a Backbone; its stages should be frozen (checked by `fit_head_on_cache`, not here).
        data: a Dataset of (image (C, H, W), label) with no random augmentation (else every call is a miss).
        cache_dir: folder of the cache files; None computes without caching.
        batch_size: images per forward pass.
        progress: show a progress bar while computing.
    """
    key = cache_key(model, data, batch_size=batch_size)
    classes = getattr(data, "classes", None)
    path = Path(cache_dir) / f"features-{key[:24]}.safetensors" if cache_dir is not None else None
    hit = _read(path, key) if path is not None else None
    if hit is not None:
        return FeatureDataset(*hit, key=key, path=path, from_cache=True, classes=classes)
    features, labels = compute_features(model, data, batch_size=batch_size, progress=progress)
    if path is not None:
        _write(path, features, labels, key, {"model": type(model).__name__, "n": str(len(labels))})
    return FeatureDataset(features, labels, key=key, path=path, from_cache=False, classes=classes)


def fit_head_on_cache(model: nn.Module, train_data, val_data, config, *, cache_dir: str | os.PathLike | None,
                      meta: dict[str, Any] | None = None, batch_size: int = 256, **fit_kwargs):
    """Train the head of a model with a frozen backbone on cached features (`cnnkit.train.fit` underneath).

    Gives the same head as `fit(model, train_data, val_data, config)` would with the same seed (the same
    data order, no augmentation), at a fraction of the cost per epoch.

    Args:
        model: a Backbone frozen with `apply_transfer(..., freeze="backbone")`.
        train_data, val_data: Datasets of images (val_data may be None).
        config: the TrainConfig (its `channels_last` and `bf16` apply to the head only).
        cache_dir: where the features are cached; None computes them for this run only.
        meta: model-file metadata for checkpoints written under `out_dir`; default: from the model and the
            image data, as `fit` would write for the whole model.
        batch_size: images per forward pass when computing the features.
        **fit_kwargs: out_dir, callbacks, resume, param_groups, progress: passed to `fit`.

    Returns:
        `fit`'s TrainResult, with `.model` the whole model (the backbone and the trained head).

    Raises:
        InputError: the backbone is not frozen.
    """
    from cnnkit.train.loop import default_meta, fit

    _check_frozen(model)
    progress = fit_kwargs.get("progress", True)
    train_feats = cached_features(model, train_data, cache_dir, batch_size=batch_size, progress=progress)
    val_feats = (cached_features(model, val_data, cache_dir, batch_size=batch_size, progress=progress)
                 if val_data is not None else None)
    if meta is None:
        meta = default_meta(model, train_data)
    result = fit(HeadOnly(model), train_feats, val_feats, config, meta=meta, **fit_kwargs)
    model.eval()
    return dataclasses.replace(result, model=model)

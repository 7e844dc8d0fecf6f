"""Weights from the user's files: torchvision `.pth`, cnnkit checkpoints and `.safetensors`.

Nothing is downloaded and no code from a file is ever run: `.pth` files are read with
`torch.load(weights_only=True)`, which refuses pickled classes and functions, and safetensors files hold
only tensors and strings. State-dict keys of the zoo follow torchvision's, so a checkpoint such as
`resnet50-0676ba61.pth` loads unchanged:

    model = create_model("resnet50", num_classes=5)
    report = load_weights(model, "resnet50-0676ba61.pth")   # everything but fc.*, and says so
    print(report)
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from cnnkit.errors import FileFormatError
from cnnkit.io import require_file

__all__ = [
    "LoadReport",
    "WeightsFile",
    "guess_architecture",
    "load_weights",
    "read_weights",
]

log = logging.getLogger("cnnkit.weights")

# Keys under which training scripts nest the model's weights; the first that holds a mapping is used.
# the metadata key of cnnkit model files; the same as cnnkit.checkpoint.META_KEY (a test checks), kept here because
# cnnkit.checkpoint builds models and so must be the one that imports this package, not the other way round
META_KEY = "cnnkit"
_WRAPPER_KEYS = ("state_dict", "model_state_dict", "model_state", "model", "module", "net", "network", "weights")
# Prefixes that wrappers add to every key: DataParallel, torch.compile, Lightning modules.
_KEY_PREFIXES = ("module.", "_orig_mod.", "model.", "net.", "network.")


@dataclass
class WeightsFile:
    """What a weights file holds, once read.

    Attributes:
        path: the file.
        format: "safetensors", "torch-zip" (torch.save since 1.6) or "torch-legacy".
        state: tensor name -> tensor, already taken out of any wrapper dict.
        meta: the cnnkit metadata of a cnnkit checkpoint (model name, kwargs, classes ...), else None.
        wrapper: the key the weights were found under ("state_dict", "model" ...), or None at top level.
        prefix: a prefix every key carried and that was dropped ("module." from DataParallel ...), or None.
        extra_keys: top-level entries of a training checkpoint that are not the weights ("optimizer", "epoch").
    """

    path: Path
    format: str
    state: dict[str, torch.Tensor]
    meta: dict[str, Any] | None = None
    wrapper: str | None = None
    prefix: str | None = None
    extra_keys: list[str] = field(default_factory=list)

    @property
    def num_params(self) -> int:
        """Elements in all floating-point tensors (buffers such as running means included)."""
        return sum(t.numel() for t in self.state.values() if t.is_floating_point())


@dataclass
class LoadReport:
    """What `load_weights` did, by tensor name.

    Attributes:
        loaded: names copied from the file into the model.
        missing: names the model has and the file lacks (they keep the model's values).
        unexpected: names the file has and the model lacks (ignored).
        shape_mismatch: (name, model shape, file shape) for names both have with different shapes (not loaded).
        skipped_classifier: classifier names not loaded because the class count differs (transfer learning).
        prefix: a wrapper prefix that was stripped from the file's keys ("module." ...), or None.
    """

    path: str
    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    shape_mismatch: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)
    skipped_classifier: list[str] = field(default_factory=list)
    prefix: str | None = None

    @property
    def ok(self) -> bool:
        """True when nothing is missing, unexpected or of the wrong shape (a skipped classifier is fine)."""
        return not (self.missing or self.unexpected or self.shape_mismatch)

    def __str__(self) -> str:
        lines = [f"{self.path}: loaded {len(self.loaded)} tensors"]
        if self.prefix:
            lines.append(f"  stripped key prefix {self.prefix!r}")
        if self.skipped_classifier:
            lines.append(f"  skipped classifier (class count differs): {_names(self.skipped_classifier)}")
        if self.missing:
            lines.append(f"  missing from the file ({len(self.missing)}): {_names(self.missing)}")
        if self.unexpected:
            lines.append(f"  unexpected in the file ({len(self.unexpected)}): {_names(self.unexpected)}")
        if self.shape_mismatch:
            shown = ", ".join(f"{k} model {list(a)} file {list(b)}" for k, a, b in self.shape_mismatch[:5])
            more = f" and {len(self.shape_mismatch) - 5} more" if len(self.shape_mismatch) > 5 else ""
            lines.append(f"  wrong shape ({len(self.shape_mismatch)}): {shown}{more}")
        return "\n".join(lines)


def _names(names: list[str], limit: int = 8) -> str:
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


# ---------------------------------------------------------------------------------------------- reading


def read_weights(path: str | os.PathLike) -> WeightsFile:
    """Read the tensors of a weights file, whatever its kind, without running any code from it.

    Accepted: safetensors (cnnkit model files included), `torch.save` files of a state dict, and training
    checkpoints that nest the state dict under "state_dict", "model", "model_state_dict" ...

    Raises:
        MissingFileError: the path does not exist.
        FileFormatError: not a checkpoint, truncated, holds no tensors, or holds pickled code (refused).
    """
    p = require_file(path)
    with open(p, "rb") as f:
        head = f.read(16)
    if _looks_like_safetensors(head, p.stat().st_size):
        return _read_safetensors(p)
    if head[:4] == b"PK\x03\x04":
        fmt = "torch-zip"
    elif head[:1] == b"\x80":  # a pickle protocol opcode: torch.save's legacy (pre-1.6) format
        fmt = "torch-legacy"
    else:
        raise FileFormatError(f"not a weights file (neither safetensors nor torch.save format): {p}")
    return _read_torch(p, fmt)


def _looks_like_safetensors(head: bytes, size: int) -> bool:
    # safetensors: 8-byte little-endian header length, then a JSON header that starts with "{".
    if len(head) < 9:
        return False
    (n,) = struct.unpack("<Q", head[:8])
    return head[8:9] == b"{" and 0 < n <= size


def _read_safetensors(p: Path) -> WeightsFile:
    from safetensors import safe_open

    try:
        state = {}
        with safe_open(str(p), framework="pt") as f:
            raw_meta = f.metadata() or {}
            for k in f.keys():
                state[k] = f.get_tensor(k)
    except Exception as e:  # safetensors raises its own error types for truncated or damaged files
        raise FileFormatError(f"damaged or truncated safetensors file: {p} ({_first_line(e)})") from None
    meta = None
    if META_KEY in raw_meta:
        try:
            meta = json.loads(raw_meta[META_KEY])
        except json.JSONDecodeError:
            raise FileFormatError(f"{p}: the cnnkit metadata is not valid JSON; re-save the checkpoint") from None
    state, prefix = _strip_wrapper_prefix(state)
    if not state:
        raise FileFormatError(f"{p} holds no tensors")
    return WeightsFile(path=p, format="safetensors", state=state, meta=meta, prefix=prefix)


def _read_torch(p: Path, fmt: str) -> WeightsFile:
    try:
        obj = torch.load(str(p), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        text = str(e)
        if "Weights only load failed" in text:
            culprit = _unsupported_global(text)
            raise FileFormatError(
                f"refusing to load {p}: it holds pickled Python objects{culprit}, not only tensors, and loading "
                "them could run code; re-save it with torch.save(model.state_dict(), ...) where it came from"
            ) from None
        raise FileFormatError(f"damaged or truncated checkpoint: {p} ({_first_line(e)})") from None
    except Exception as e:  # zip and pickle readers raise OSError, RuntimeError, EOFError, KeyError ...
        raise FileFormatError(f"damaged or truncated checkpoint: {p} ({type(e).__name__}: {_first_line(e)})") from None
    state, wrapper, extra = _unwrap(obj)
    if not state:
        raise FileFormatError(f"{p} holds no tensors (a {type(obj).__name__}); expected a state dict")
    state, prefix = _strip_wrapper_prefix(state)
    return WeightsFile(path=p, format=fmt, state=state, wrapper=wrapper, prefix=prefix, extra_keys=extra)


def _unsupported_global(text: str) -> str:
    marker = "Unsupported global: GLOBAL "
    if marker in text:
        return f" (such as {text.split(marker, 1)[1].split()[0]})"
    return ""


def _first_line(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return lines[0][:200] if lines else type(e).__name__


def _unwrap(obj: Any) -> tuple[dict[str, torch.Tensor], str | None, list[str]]:
    """The tensors of a state dict, found at top level or under a wrapper key. Returns (state, key, others)."""
    if not isinstance(obj, Mapping):
        return {}, None, []
    tensors = {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if tensors:
        return tensors, None, []
    for key in _WRAPPER_KEYS:
        inner = obj.get(key)
        if isinstance(inner, Mapping):
            state, _, _ = _unwrap(inner)
            if state:
                return state, key, [str(k) for k in obj if k != key]
    return {}, None, []


def _strip_wrapper_prefix(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], str | None]:
    """Drop a prefix every key carries ("module." from DataParallel ...); repeated prefixes are all dropped."""
    found = []
    while state:
        prefix = next((p for p in _KEY_PREFIXES if all(k.startswith(p) for k in state)), None)
        if prefix is None:
            break
        state = {k[len(prefix):]: v for k, v in state.items()}
        found.append(prefix)
    return state, "".join(found) or None


# ---------------------------------------------------------------------------------------------- loading


def load_weights(model: nn.Module, path: str | os.PathLike, *, strict: bool = False) -> LoadReport:
    """Copy the tensors of a weights file into `model`, matching by name, and report what matched.

    A classifier whose class count differs from the file's (ImageNet weights into a 5-class model) is
    skipped with a logged warning: everything else loads, as transfer learning expects. Tensors of the wrong
    shape elsewhere are not loaded and are reported by name.

    Args:
        model: the model to fill, e.g. `create_model("resnet50", num_classes=5)`.
        path: a torchvision `.pth`, a cnnkit checkpoint, a training checkpoint dict or a `.safetensors` file.
        strict: raise when any tensor is missing, unexpected or of the wrong shape (a classifier skipped
            because the class count differs is still accepted).

    Returns:
        A LoadReport naming the loaded, missing, unexpected, wrong-shape and skipped-classifier tensors.

    Raises:
        FileFormatError: the file cannot be read (see `read_weights`), shares no tensor name with the model,
            or (with strict=True) does not match the model exactly.
    """
    wf = read_weights(path)
    target = model.state_dict()
    upgrade = getattr(model, "upgrade_state_dict", None)  # a family's renames of older checkpoints' keys
    file_state, prefix = _match_prefix(upgrade(wf.state) if callable(upgrade) else wf.state, target)
    report = LoadReport(path=str(wf.path), prefix=(wf.prefix or "") + (prefix or "") or None)
    if not any(k in target for k in file_state):
        raise FileFormatError(
            f"{wf.path} shares no tensor names with {type(model).__name__} (file has e.g. "
            f"{_names(sorted(file_state), 3)}); `cnnkit weights inspect {wf.path}` shows what it holds"
        )

    head_prefixes = _classifier_prefixes(model)
    to_load = {}
    for key, tensor in file_state.items():
        in_head = any(key.startswith(h) for h in head_prefixes)
        if key not in target:
            (report.skipped_classifier if in_head else report.unexpected).append(key)
        elif tuple(tensor.shape) != tuple(target[key].shape):
            if in_head:
                report.skipped_classifier.append(key)
            else:
                report.shape_mismatch.append((key, tuple(target[key].shape), tuple(tensor.shape)))
        else:
            to_load[key] = tensor

    if strict and (report.unexpected or report.shape_mismatch or _missing(target, to_load, report)):
        report.missing = _missing(target, to_load, report)
        raise FileFormatError(f"{wf.path} does not match {type(model).__name__}: " + _mismatch_line(report))

    result = model.load_state_dict(to_load, strict=False)
    skipped = set(report.skipped_classifier) | {k for k, _, _ in report.shape_mismatch}
    report.missing = [k for k in result.missing_keys if k not in skipped]
    report.loaded = [k for k in to_load if k in target]
    if report.skipped_classifier:
        log.warning("%s", _classifier_message(report, file_state, target))
    if report.missing or report.unexpected or report.shape_mismatch:
        log.warning("%s: %s", wf.path, _mismatch_line(report))
    return report


def _missing(target: Mapping[str, torch.Tensor], to_load: Mapping[str, torch.Tensor], report: LoadReport) -> list[str]:
    skipped = set(report.skipped_classifier) | {k for k, _, _ in report.shape_mismatch}
    # BatchNorm fills num_batches_tracked itself when an old checkpoint lacks it (torchvision's do).
    return [k for k in target if k not in to_load and k not in skipped and not k.endswith("num_batches_tracked")]


def _mismatch_line(report: LoadReport) -> str:
    parts = []
    if report.missing:
        parts.append(f"missing {_names(report.missing, 5)}")
    if report.unexpected:
        parts.append(f"unexpected {_names(report.unexpected, 5)}")
    if report.shape_mismatch:
        shown = [f"{k} (model {list(a)}, file {list(b)})" for k, a, b in report.shape_mismatch[:3]]
        parts.append("wrong shape " + ", ".join(shown))
    return "; ".join(parts)


def _classifier_message(report: LoadReport, file_state: Mapping[str, torch.Tensor], target: Mapping) -> str:
    weights = [k for k in report.skipped_classifier if k.endswith("weight")] or report.skipped_classifier
    key = weights[0]
    file_n = int(file_state[key].shape[0]) if file_state[key].dim() else "?"
    model_n = int(target[key].shape[0]) if key in target and target[key].dim() else "none"
    return (
        f"{report.path}: classifier not loaded ({', '.join(report.skipped_classifier)}): the file has {file_n} "
        f"classes, the model {model_n}; it keeps its fresh initialisation (expected when fine-tuning)"
    )


def _match_prefix(
    state: dict[str, torch.Tensor], target: Mapping[str, torch.Tensor]
) -> tuple[dict[str, torch.Tensor], str | None]:
    """Strip the wrapper prefix (on some keys only, e.g. "model." beside "ema.") that best matches the model."""
    best, best_prefix, best_hits = state, None, sum(k in target for k in state)
    for prefix in _KEY_PREFIXES:
        candidate = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        hits = sum(k in target for k in candidate)
        if hits > best_hits:
            best, best_prefix, best_hits = candidate, prefix, hits
    if best_prefix is not None:  # keep the keys without the prefix visible as unexpected
        best = {**{k: v for k, v in state.items() if not k.startswith(best_prefix)}, **best}
    return best, best_prefix


def _classifier_prefixes(model: nn.Module) -> list[str]:
    """Name prefixes of the model's classifier ("fc.", "classifier."): its own get_classifier, else its last Linear."""
    head = None
    getter = getattr(model, "get_classifier", None)
    if callable(getter):
        try:
            head = getter()
        except (NotImplementedError, AttributeError):
            head = None
    names = [n for n, m in model.named_modules() if head is not None and m is head and n]
    if not names:
        linears = [n for n, m in model.named_modules() if isinstance(m, nn.Linear) and n]
        names = linears[-1:]
    return [f"{n}." for n in names]


# ---------------------------------------------------------------------------------------------- guessing


def guess_architecture(state: Mapping[str, torch.Tensor], top: int = 3) -> list[tuple[str, float]]:
    """Registered models whose tensor names and shapes best match `state`, best first.

    The score is the share of (name, shape) pairs the file and the model have in common (1.0: identical,
    a different class count costs only the classifier). Models are built on the meta device, so no memory
    is allocated for them.

    Returns:
        Up to `top` (model name, score) pairs with a score above zero.
    """
    from cnnkit.models.registry import list_models

    want = {(k, tuple(v.shape)) for k, v in state.items()}
    want_names = {k for k, _ in want}
    scored = []
    for name in list_models():
        have = _model_signature(name)
        if not have:
            continue
        both = len(want & have)
        names_both = len(want_names & {k for k, _ in have})
        # Names alone break ties between same-keyed families (resnet18 vs resnet34 share names, not shapes).
        score = (both + 0.01 * names_both) / max(len(want), len(have))
        if score > 0:
            scored.append((name, round(min(score, 1.0), 4)))
    scored.sort(key=lambda s: -s[1])
    return scored[:top]


@cache
def _model_signature(name: str) -> frozenset[tuple[str, tuple[int, ...]]]:
    from cnnkit.models.registry import create_model

    try:
        with torch.device("meta"):
            model = create_model(name)
    except Exception:  # a builder that cannot run on the meta device is simply not guessed
        return frozenset()
    return frozenset((k, tuple(v.shape)) for k, v in model.state_dict().items())

"""Named-layer activations of any zoo backbone, with the input preprocessing that network expects.

`FeatureExtractor` hooks the requested layers of a model and returns their activations as a dict; it takes
images as RGB tensors in [0, 1] and applies the network's own preprocessing (channel order, value range, mean,
std), so callers never think about it. The forward pass stops after the deepest requested layer.

Layer names are the model's module names (``features.21``, ``layer3.1.conv2``); models with named activations
of their own (``forward_layers`` and ``layer_names``, as HED's VGG-16) use those; and VGG-style networks (an
``nn.Sequential`` of convolutions, ReLUs and max pools) get the names of the style-transfer literature, as
`vgg16_hed` spells them: ``conv4_2`` is the output of the second convolution of block 4 before its ReLU,
``relu4_2`` after it (what Caffe, Keras, the paper and the course call "conv4_2"), ``pool3`` the third max pool.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn as nn

from cnnkit.errors import InputError, UnknownNameError

__all__ = [
    "IMAGENET_NORM",
    "FeatureExtractor",
    "InputNorm",
    "layer_geometry",
    "layer_names",
    "load_network",
    "Network",
]


@dataclass(frozen=True)
class InputNorm:
    """Differentiable preprocessing of a batch of RGB images in [0, 1].

    Attributes:
        colour: "RGB" or "BGR", the channel order the network takes.
        scale: pixel range the mean and std apply to (1.0 or 255.0).
        mean: per channel, in `colour` order and `scale` units.
        std: per channel, in `scale` units.
    """

    colour: str = "RGB"
    scale: float = 1.0
    mean: tuple[float, ...] = (0.485, 0.456, 0.406)
    std: tuple[float, ...] = (0.229, 0.224, 0.225)

    @classmethod
    def from_preprocess(cls, pre) -> InputNorm:
        """From a `cnnkit.models.pretrained.Preprocess` (or anything with colour/scale/mean/std)."""
        return cls(getattr(pre, "colour", "RGB"), float(getattr(pre, "scale", 1.0)), tuple(pre.mean), tuple(pre.std))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Tensor[B, 3, H, W] RGB in [0, 1] -> the network's input (Tensor[B, C, H, W], C = len(mean))."""
        if len(self.mean) == 1 and x.shape[1] == 3:  # a grayscale network (LeNet on digits): ITU-R 601 luma
            x = (0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3])
        elif self.colour == "BGR":
            x = x.flip(1)
        mean = torch.tensor(self.mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
        std = torch.tensor(self.std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
        return (x * self.scale - mean) / std


IMAGENET_NORM = InputNorm()


def _vgg_aliases(model: nn.Module) -> dict[str, str]:
    """convB_I / reluB_I / poolB names for a VGG-style `features` Sequential (empty for other layouts)."""
    seq = getattr(model, "features", None)
    if not isinstance(seq, nn.Sequential):
        return {}
    kinds = [type(m) for m in seq]
    if not any(k is nn.Conv2d for k in kinds) or any(
        k not in (nn.Conv2d, nn.ReLU, nn.MaxPool2d, nn.BatchNorm2d, nn.Dropout) for k in kinds
    ):
        return {}
    aliases: dict[str, str] = {}
    block, conv, last_conv = 1, 0, None
    for i, m in enumerate(seq):
        if isinstance(m, nn.Conv2d):
            conv += 1
            last_conv = f"{block}_{conv}"
            aliases[f"conv{last_conv}"] = f"features.{i}"
        elif isinstance(m, nn.ReLU) and last_conv is not None:
            aliases[f"relu{last_conv}"] = f"features.{i}"
        elif isinstance(m, nn.MaxPool2d):
            aliases[f"pool{block}"] = f"features.{i}"
            block, conv = block + 1, 0
    return aliases


def layer_names(model: nn.Module) -> dict[str, str]:
    """Every layer name `FeatureExtractor` accepts for `model`, mapped to its module path.

    A model with ``forward_layers(x, names)`` and ``layer_names`` (HED's VGG-16) offers exactly those; VGG-style
    ones get convB_I / reluB_I / poolB; every module path (``features.3``, ``layer2.0.conv1``) names itself.
    """
    if _has_named_activations(model):
        return {n: n for n in model.layer_names}
    names = {}
    for alias, path in _vgg_aliases(model).items():
        names.setdefault(alias, path)
    for path, _ in model.named_modules():
        if path:
            names.setdefault(path, path)
    return names


def resolve_layer(model: nn.Module, name: str, names: Mapping[str, str] | None = None) -> str:
    """Module path of layer `name`, or UnknownNameError listing the names available."""
    names = layer_names(model) if names is None else names
    if name in names:
        return names[name]
    short = [n for n in names if "." not in n] or list(names)
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.6)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    listed = ", ".join(short[:40]) + (" ..." if len(short) > 40 else "")
    raise UnknownNameError(f"unknown layer {name!r}{hint}; available: {listed}")


def _has_named_activations(model: nn.Module) -> bool:
    return callable(getattr(model, "forward_layers", None)) and isinstance(getattr(model, "layer_names", None), list)


class _Stop(Exception):
    """Raised by the hook of the deepest requested layer: the layers after it need not run."""


class FeatureExtractor(nn.Module):
    """Activations of named layers of a frozen model.

    Args:
        model: any nn.Module (a zoo backbone, a cnnkit checkpoint's model); put in eval mode, its parameters
            frozen, its in-place activations made out-of-place (a hooked output must not change afterwards).
        layers: layer names (see `layer_names`).
        norm: the network's preprocessing; inputs are RGB in [0, 1].

    Calling it with Tensor[B, 3, H, W] returns {name: Tensor[B, C_l, H_l, W_l]} in the order of `layers`.
    """

    def __init__(self, model: nn.Module, layers: Sequence[str], norm: InputNorm = IMAGENET_NORM) -> None:
        super().__init__()
        if not layers:
            raise InputError("no layers requested")
        self.model = model.eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        for m in self.model.modules():
            if getattr(m, "inplace", False):
                m.inplace = False
        names = layer_names(model)
        self.layers = list(dict.fromkeys(layers))
        self.paths = {name: resolve_layer(model, name, names) for name in self.layers}
        self.norm = norm
        self._out: dict[str, torch.Tensor] = {}
        self._wanted = set(self.paths.values())
        self._named = _has_named_activations(model)  # the model returns its named activations itself: no hooks

    def _hook(self, path: str):
        def hook(module, inputs, output):
            self._out[path] = output
            if len(self._out) == len(self._wanted):  # every requested layer has run: skip the rest
                raise _Stop

        return hook

    def _run(self, x: torch.Tensor) -> None:
        # Backbones skip their classifier head; other modules run whole.
        fn = getattr(self.model, "forward_features", None) or self.model
        fn(x)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        self._out = {}
        x = self.norm(x)
        if self._named:
            out = self.model.forward_layers(x, list(self.paths.values()))
            return {name: out[path] for name, path in self.paths.items()}
        # Hooks live only during the call, so the model behaves normally everywhere else.
        modules = dict(self.model.named_modules())
        handles = [modules[p].register_forward_hook(self._hook(p)) for p in dict.fromkeys(self.paths.values())]
        try:
            self._run(x)
        except _Stop:
            pass
        finally:
            for h in handles:
                h.remove()
        missing = [p for p in self.paths.values() if p not in self._out]
        if missing:
            raise InputError(f"layers {missing} did not run in the model's feature pass; pick other layers")
        out = {name: self._out[path] for name, path in self.paths.items()}
        self._out = {}
        return out


def _leaf_geometry(module: nn.Module) -> tuple[int, int, int] | None:
    """(filter size, stride, padding) along the height of a conv or pool layer, None for other layers."""
    def first(v):
        return v[0] if isinstance(v, tuple) else v

    if isinstance(module, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)):
        k, s, p = first(module.kernel_size), first(module.stride), first(module.padding)
        d = first(getattr(module, "dilation", 1))
        if isinstance(p, str):  # "same"
            p = d * (k - 1) // 2
        return d * (k - 1) + 1, s or k, p
    return None


def layer_geometry(model: nn.Module, layer: str, input_size: tuple[int, int] = (224, 224)) -> tuple[int, int, float]:
    """Receptive field ``r``, jump ``j`` and offset of `layer`'s units, in input pixels (height axis).

    Unit ``i`` of the layer sees input rows ``offset + i * j - (r - 1) / 2 ... offset + i * j + (r - 1) / 2``:
    the window is centred at ``offset + i * j``. ``r`` and ``j`` come from `cnnkit.shapes.receptive_field` over
    the convolution and pooling layers that run before `layer` (in execution order, found with a forward pass
    on a zero image of `input_size`); for branching networks this is the longest path.
    """
    from cnnkit.shapes import receptive_field

    path = resolve_layer(model, layer)
    modules = dict(model.named_modules())
    order: list[tuple[int, int, int]] = []
    handles = []
    named = _has_named_activations(model)

    def leaf_hook(module, inputs, output):
        g = _leaf_geometry(module)
        if g is not None:
            order.append(g)

    def stop_hook(module, inputs, output):
        raise _Stop

    for m in model.modules():
        if _leaf_geometry(m) is not None:
            handles.append(m.register_forward_hook(leaf_hook))
    if not named:
        handles.append(modules[path].register_forward_hook(stop_hook))
    in_chans = getattr(model, "default_input_size", (3,))[0]
    try:
        with torch.no_grad():
            x = torch.zeros(1, in_chans, *input_size)
            if named:  # it stops after the layer by itself
                model.forward_layers(x, [path])
            else:
                (getattr(model, "forward_features", None) or model)(x)
    except _Stop:
        pass
    finally:
        for h in handles:
            h.remove()
    if not order:
        return 1, 1, 0.0
    rj = receptive_field([(f, s) for f, s, _ in order])
    # centre of unit 0: each layer moves it by ((f - 1) / 2 - p) of the previous layer's jump
    offset, jump = 0.0, 1
    for (f, _, p), (_, j_after) in zip(order, rj, strict=True):
        offset += ((f - 1) / 2 - p) * jump
        jump = j_after
    r, j = rj[-1]
    return r, j, offset


@dataclass
class Network:
    """A loaded network with what it takes to feed it and read its output.

    Attributes:
        model: the module, in eval mode.
        norm: its input preprocessing (inputs are RGB in [0, 1]).
        description: one line saying what was loaded.
        classes: class names of its outputs, when known.
        input_size: (C, H, W) it was trained on.
    """

    model: nn.Module
    norm: InputNorm
    description: str
    classes: list[str] | None = None
    input_size: tuple[int, int, int] = (3, 224, 224)


def load_network(model: str | nn.Module, weights: str | None = None) -> Network:
    """A network and its preprocessing from a zoo name, a pretrained tag, a weights file or a cnnkit model file.

    Args:
        model: a registered model name ("vgg16", "vgg16_hed"), a path to a cnnkit model file (.safetensors written
            by `cnnkit train`), or a module (taken with ImageNet preprocessing).
        weights: for a zoo name, a pretrained tag ("imagenet", "hed") or a weights file.
    """
    import os

    if isinstance(model, nn.Module):
        size = tuple(getattr(model, "default_input_size", (3, 224, 224)))
        return Network(model.eval(), IMAGENET_NORM, type(model).__name__, None, size)
    if os.path.exists(model):
        from cnnkit.checkpoint import load_model_file

        net, meta = load_model_file(model)
        size = tuple(meta.get("input_size") or getattr(net, "default_input_size", (3, 224, 224)))
        mean = tuple(meta.get("mean") or [0.0] * size[0])
        std = tuple(meta.get("std") or [1.0] * size[0])
        return Network(net.eval(), InputNorm("RGB", 1.0, mean, std), f"{meta.get('model', '?')} from {model}",
                       meta.get("classes"), size)
    from cnnkit.models import create_model

    net = create_model(model, weights=weights).eval()
    size = tuple(getattr(net, "default_input_size", (3, 224, 224)))
    cfg = getattr(net, "pretrained_cfg", None)  # set by the pretrained-weights registry, with its preprocessing
    if cfg is not None:
        pre = cfg.preprocess
        size = (3, *(v or d for v, d in zip(pre.input_size[1:], size[1:], strict=True)))
        return Network(net, InputNorm.from_preprocess(pre), f"{model} with pretrained weights {weights!r}",
                       cfg.classes(), size)
    what = f"weights from {weights}" if weights else "random weights"
    return Network(net, IMAGENET_NORM, f"{model} with {what}", None, size)

"""Activation and normalisation layers given by class or by name ("relu", "silu", "batchnorm").

Layers across the zoo take `act_layer=nn.ReLU` or `act_layer="relu"` (never an instance), so one block
definition serves the ReLU ResNet, the ReLU6 MobileNet and the SiLU EfficientNet. These helpers turn either
form into a class, and build an instance in place where the class allows it.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable

import torch.nn as nn

from cnnkit.errors import UnknownNameError

LayerType = type[nn.Module] | Callable[..., nn.Module] | str | None

_ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "relu6": nn.ReLU6,
    "leaky_relu": nn.LeakyReLU,
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "swish": nn.SiLU,
    "hardswish": nn.Hardswish,
    "hard_swish": nn.Hardswish,
    "hardsigmoid": nn.Hardsigmoid,
    "hard_sigmoid": nn.Hardsigmoid,
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "identity": nn.Identity,
}

_NORMS: dict[str, type[nn.Module]] = {
    "batchnorm": nn.BatchNorm2d,
    "batchnorm2d": nn.BatchNorm2d,
    "bn": nn.BatchNorm2d,
    "instancenorm": nn.InstanceNorm2d,
    "groupnorm": nn.GroupNorm,
}


def _resolve(layer: LayerType, table: dict[str, type[nn.Module]], kind: str) -> Callable[..., nn.Module] | None:
    if layer is None or not isinstance(layer, str):
        return layer
    key = layer.lower().replace("-", "_")
    if key in ("", "none"):
        return None
    try:
        return table[key]
    except KeyError:
        raise UnknownNameError(f"unknown {kind} layer {layer!r}; choose one of {', '.join(sorted(table))}") from None


def get_act_layer(act_layer: LayerType) -> Callable[..., nn.Module] | None:
    """The activation class for a class, a factory or a name ("relu", "silu" ...); None and "none" give None."""
    return _resolve(act_layer, _ACTIVATIONS, "activation")


def get_norm_layer(norm_layer: LayerType) -> Callable[..., nn.Module] | None:
    """The normalisation class for a class, a factory or a name ("batchnorm" ...); None and "none" give None."""
    return _resolve(norm_layer, _NORMS, "normalization")


def _accepts_inplace(factory: Callable[..., nn.Module]) -> bool:
    # nn.ReLU takes `inplace`, nn.GELU and nn.Sigmoid do not; asking the signature keeps one code path for all.
    target = factory.func if isinstance(factory, functools.partial) else factory
    try:
        params = inspect.signature(target).parameters
    except (TypeError, ValueError):
        return False
    return "inplace" in params


def create_act(act_layer: LayerType, inplace: bool = True) -> nn.Module:
    """An activation instance (nn.Identity for None), in place when the class supports it.

    Args:
        act_layer: a class, a factory or a name understood by `get_act_layer`.
        inplace: overwrite the input where the class allows it (saves memory after a BatchNorm).
    """
    factory = get_act_layer(act_layer)
    if factory is None:
        return nn.Identity()
    return factory(inplace=inplace) if inplace and _accepts_inplace(factory) else factory()

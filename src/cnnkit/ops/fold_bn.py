"""Batch norm folding: at inference a BatchNorm after a convolution is an affine map per channel, so it can
be merged into the convolution's weights and bias, removing one pass over the activations.

For a convolution `y = W * x + b` followed by batch norm in eval mode,

    bn(y) = gamma * (y - mean) / sqrt(var + eps) + beta = (s * W) * x + (s * (b - mean) + beta),

with `s = gamma / sqrt(var + eps)` per output channel. `fold_conv_bn` returns the convolution with
`W' = s * W` and `b' = s * (b - mean) + beta`; `fold_batchnorms` does it for every conv -> bn pair of a model.
"""

from __future__ import annotations

import copy

import torch
import torch.nn as nn

from cnnkit.errors import InputError

__all__ = ["fold_batchnorms", "fold_conv_bn", "fold_linear_bn"]

_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_BNS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


def _bn_scale_shift(bn: nn.modules.batchnorm._BatchNorm) -> tuple[torch.Tensor, torch.Tensor]:
    """(s, t) with bn(y) = s * y + t per channel, in eval mode."""
    if bn.running_mean is None or bn.running_var is None:
        raise InputError(f"cannot fold {type(bn).__name__} without running statistics (track_running_stats=False)")
    inv_std = torch.rsqrt(bn.running_var.double() + bn.eps)
    gamma = bn.weight.double() if bn.weight is not None else torch.ones_like(inv_std)
    beta = bn.bias.double() if bn.bias is not None else torch.zeros_like(inv_std)
    s = gamma * inv_std  # (C,)
    return s, beta - bn.running_mean.double() * s


def fold_conv_bn(conv: nn.Module, bn: nn.Module) -> nn.Module:
    """A new convolution equal to `bn(conv(x))` with `bn` in eval mode (its running statistics).

    Works for Conv1d/2d/3d with any groups, stride, padding and dilation, with or without bias, and for
    batch norm with or without affine parameters. The per-channel scale and shift are computed in float64;
    the new weights are then one multiplication away from the old (at most a unit in the last place or two).

    Args:
        conv: the convolution (left unchanged).
        bn: the batch norm applied to its output; `bn.num_features == conv.out_channels`.

    Returns:
        A convolution of the same class and hyper-parameters, always with a bias, no gradients tracked.

    Raises:
        InputError: the layers do not fit together, or the batch norm has no running statistics.
    """
    if not isinstance(conv, _CONVS) or not isinstance(bn, _BNS):
        raise InputError(f"fold_conv_bn needs a Conv1d/2d/3d and a BatchNorm, got {type(conv).__name__} and "
                         f"{type(bn).__name__}")
    if bn.num_features != conv.out_channels:
        raise InputError(f"batch norm has {bn.num_features} channels but the convolution gives {conv.out_channels}")
    s, t = _bn_scale_shift(bn)
    w = conv.weight  # (C_out, C_in / groups, *kernel)
    scale = s.to(w.dtype).view(-1, *([1] * (w.dim() - 1)))
    b = conv.bias.double() if conv.bias is not None else torch.zeros_like(s)
    return _with_params(conv, w.detach() * scale, (b * s + t).to(w.dtype))


def _with_params(layer: nn.Module, weight: torch.Tensor, bias: torch.Tensor) -> nn.Module:
    """A shallow copy of `layer` (same class and settings) holding new weight and bias, without grad."""
    fused = copy.copy(layer)  # not deepcopy: the old weights would be copied only to be replaced
    fused._parameters = dict(layer._parameters)
    fused.weight = nn.Parameter(weight, requires_grad=False)
    fused.bias = nn.Parameter(bias, requires_grad=False)
    return fused


def fold_linear_bn(linear: nn.Linear, bn: nn.BatchNorm1d) -> nn.Linear:
    """A new Linear equal to `bn(linear(x))` with `bn` in eval mode (the same algebra as `fold_conv_bn`)."""
    if not isinstance(linear, nn.Linear) or not isinstance(bn, nn.BatchNorm1d):
        raise InputError(f"fold_linear_bn needs Linear and BatchNorm1d, got {type(linear).__name__} and "
                         f"{type(bn).__name__}")
    if bn.num_features != linear.out_features:
        raise InputError(f"batch norm has {bn.num_features} channels but the linear layer gives {linear.out_features}")
    s, t = _bn_scale_shift(bn)
    w = linear.weight  # (out, in)
    b = linear.bias.double() if linear.bias is not None else torch.zeros_like(s)
    return _with_params(linear, w.detach() * s.to(w.dtype)[:, None], (b * s + t).to(w.dtype))


def fold_batchnorms(model: nn.Module) -> tuple[nn.Module, int]:
    """Fold every batch norm that directly follows a convolution into it, in place.

    Pairs are found by tracing the model with torch.fx (a conv whose only consumer is a batch norm), or,
    when the model cannot be traced, as neighbours inside an nn.Sequential. The folded batch norm becomes
    nn.Identity, so the module tree (and methods such as `forward_features`) stay as they were.

    Args:
        model: a model in eval mode; its folded layers are replaced.

    Returns:
        (model, number of batch norms folded).

    Raises:
        InputError: the model is in training mode (a batch norm there uses batch statistics, not running ones).
    """
    if model.training:
        raise InputError("fold_batchnorms needs a model in eval mode (call model.eval() first)")
    pairs = _pairs_from_fx(model)
    if pairs is None:
        pairs = _pairs_by_parts(model)
    for conv_name, bn_name in pairs:
        conv, bn = model.get_submodule(conv_name), model.get_submodule(bn_name)
        _set_submodule(model, conv_name, fold_conv_bn(conv, bn))
        _set_submodule(model, bn_name, nn.Identity())
    return model, len(pairs)


def _pairs_by_parts(model: nn.Module) -> list[tuple[str, str]]:
    """Pairs of a model that cannot be traced as a whole (a U-Net padding its input to a size rule): each child
    traced on its own, recursively, plus the neighbours among a Sequential's own children."""
    children = list(model.named_children())
    pairs = []
    if isinstance(model, nn.Sequential):
        pairs += [(a, b) for (a, ma), (b, mb) in zip(children, children[1:], strict=False) if _foldable(ma, mb)]
    for name, child in children:
        if not any(True for _ in child.children()):
            continue  # a leaf: nothing inside to pair
        sub = _pairs_from_fx(child)
        if sub is None:
            sub = _pairs_by_parts(child)
        pairs += [(f"{name}.{c}", f"{name}.{b}") for c, b in sub]
    return pairs


def _pairs_from_fx(model: nn.Module) -> list[tuple[str, str]] | None:
    import torch.fx

    class LeafLayers(torch.fx.Tracer):
        """Subclasses of torch's layers (a TF-"SAME" padded Conv2d) stay whole, so they can take a fold too."""

        def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
            return isinstance(m, (nn.modules.conv._ConvNd, nn.Linear, *_BNS)) or super().is_leaf_module(m, qualname)

    try:
        graph = LeafLayers().trace(model)
    except Exception:  # data-dependent control flow and the like: fall back to Sequential neighbours
        return None
    calls: dict[str, int] = {}
    for node in graph.nodes:
        if node.op == "call_module":
            calls[node.target] = calls.get(node.target, 0) + 1
    pairs = []
    for node in graph.nodes:
        if node.op != "call_module" or not isinstance(model.get_submodule(node.target), _BNS):
            continue
        prev = node.args[0] if node.args else None
        if not isinstance(prev, torch.fx.Node) or prev.op != "call_module" or len(prev.users) != 1:
            continue
        producer, bn = model.get_submodule(prev.target), model.get_submodule(node.target)
        # A module called from two places (shared weights) cannot take one folding for both uses.
        if calls[prev.target] == 1 and calls[node.target] == 1 and _foldable(producer, bn):
            pairs.append((prev.target, node.target))
    return pairs


def _pairs_from_sequentials(model: nn.Module) -> list[tuple[str, str]]:
    pairs = []
    for name, seq in model.named_modules():
        if not isinstance(seq, nn.Sequential):
            continue
        children = list(seq.named_children())
        for (a_name, a), (b_name, b) in zip(children, children[1:], strict=False):
            if _foldable(a, b):
                prefix = f"{name}." if name else ""
                pairs.append((prefix + a_name, prefix + b_name))
    return pairs


def _foldable(producer: nn.Module, bn: nn.Module) -> bool:
    if not isinstance(bn, _BNS) or bn.running_mean is None:
        return False
    # Linear -> BatchNorm1d is left alone: on a (N, L, C) input the two act on different axes, and that cannot
    # be seen without running the model; its cost is negligible beside the convolutions anyway.
    return isinstance(producer, _CONVS) and producer.out_channels == bn.num_features


def _set_submodule(model: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, module)

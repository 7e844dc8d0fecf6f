"""Transfer learning: start from a weights file, replace the head, freeze the backbone or all but its last stages.

    model = create_model("resnet20_cifar", num_classes=10)
    apply_transfer(model, weights="pretrained.safetensors", num_classes=5, freeze="backbone")
    fit(model, train, val, TrainConfig(...))          # only the new head learns

What is a "stage" and what is the "head" is read from the Backbone contract, for every family alike: the
stages are what `forward_stages` computes (stage k = the parameters that the k-th feature map depends on
and the earlier ones do not; a stem that `forward_stages` does not report on its own belongs to the first
stage) and the head is what `forward_head`
adds. `split_parameters(model)` and `stage_modules(model)` find them by following the autograd graph of one
small forward pass, so a new family needs no code here.

Frozen layers are also kept in eval mode while the rest trains (BatchNorm uses its stored statistics and
does not update them, dropout is off): a frozen backbone then computes exactly the features it computed
before training, which is what makes caching them (`cnnkit.train.feature_cache`) valid.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import torch
import torch.nn as nn

from cnnkit.errors import InputError

log = logging.getLogger("cnnkit.transfer")

FREEZE_MODES = (None, "backbone")


@dataclass
class ParameterSplit:
    """Parameter names of a backbone, by role.

    Attributes:
        stages: one list per stage, shallow to deep; the stem is in the first.
        head: parameters that only `forward_head` uses (pooling layers, pre-logits layers, the classifier).
        unused: parameters that neither uses (e.g. auxiliary classifiers active only in training).
    """

    stages: list[list[str]]
    head: list[str]
    unused: list[str]


def _reachable_params(roots, names_by_id: dict[int, str]) -> set[str]:
    """Names of the leaf parameters that the autograd graph below `roots` reaches."""
    found, seen = set(), set()
    stack = [fn for fn in roots if fn is not None]
    while stack:
        fn = stack.pop()
        if fn in seen:
            continue
        seen.add(fn)
        var = getattr(fn, "variable", None)  # AccumulateGrad nodes hold the leaf tensor
        if var is not None and id(var) in names_by_id:
            found.add(names_by_id[id(var)])
        stack.extend(nxt for nxt, _ in fn.next_functions if nxt is not None)
    return found


def split_parameters(model: nn.Module) -> ParameterSplit:
    """Which parameters belong to which stage and which to the head, from one forward pass of one image.

    The pass runs in eval mode on a zero image of `model.default_input_size` with gradients on, and only the
    autograd graph is read (nothing is backpropagated, nothing in the model changes).

    Raises:
        InputError: the model does not keep the Backbone contract (no `forward_stages`/`forward_head`).
    """
    if not (hasattr(model, "forward_stages") and hasattr(model, "forward_head")):
        raise InputError(f"{type(model).__name__} is not a cnnkit Backbone (no forward_stages/forward_head); "
                         "transfer learning needs a model from the zoo")
    params = dict(model.named_parameters())
    names_by_id = {id(p): n for n, p in params.items()}
    flags = {n: p.requires_grad for n, p in params.items()}
    was_training = model.training
    first = next(iter(params.values()), None)
    device = first.device if first is not None else torch.device("cpu")
    x = torch.zeros(1, *model.default_input_size, device=device)  # (1, C, H, W)
    try:
        for p in params.values():
            p.requires_grad_(True)  # a frozen parameter would be invisible in the graph
        model.eval()
        with torch.enable_grad():
            maps = model.forward_stages(x)
            logits = model.forward_head(maps[-1])
        stages, taken = [], set()
        for m in maps:
            names = _reachable_params([m.grad_fn], names_by_id) - taken
            stages.append(names)
            taken |= names
        head = _reachable_params([logits.grad_fn], names_by_id) - taken
    finally:
        for n, p in params.items():
            p.requires_grad_(flags[n])
        model.train(was_training)
    unused = set(params) - taken - head

    def ordered(names: set[str]) -> list[str]:
        return [n for n in params if n in names]  # the model's own order, for reading

    return ParameterSplit(stages=[ordered(s) for s in stages], head=ordered(head), unused=ordered(unused))


def _top_modules(model: nn.Module, names: set[str]) -> list[nn.Module]:
    """The outermost submodules whose parameters (at least one) all lie in `names`."""
    chosen = []

    def visit(prefix: str, module: nn.Module) -> None:
        own = [prefix + n for n, _ in module.named_parameters()]
        if own and all(n in names for n in own):
            chosen.append(module)
            return
        for child_name, child in module.named_children():
            visit(f"{prefix}{child_name}.", child)

    visit("", model)
    return chosen


def stage_modules(model: nn.Module) -> list[nn.Module]:
    """One module per stage of a backbone, shallow to deep.

    Each stage is an `nn.ModuleList` of the outermost submodules that hold its parameters, as found by
    `split_parameters`: for the CIFAR ResNets [conv1, bn1, layer1], [layer2], [layer3]; for torchvision-style
    ResNets [conv1, bn1], [layer1] ... [layer4]; for LeNet-5 [c1], [c3], [c5]. Works for every Backbone
    without code per family.
    """
    split = split_parameters(model)
    return [nn.ModuleList(_top_modules(model, set(names))) for names in split.stages]


def _keep_eval(module: nn.Module, args) -> None:
    """Forward pre-hook of a frozen module: run it in eval mode even when the model trains."""
    if module.training:
        module.eval()


def _remove_keep_eval(model: nn.Module) -> None:
    for m in model.modules():
        for key in [k for k, h in m._forward_pre_hooks.items() if h is _keep_eval]:
            del m._forward_pre_hooks[key]


def frozen_modules(model: nn.Module) -> list[nn.Module]:
    """The outermost submodules whose parameters are all frozen (requires_grad False)."""
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    return _top_modules(model, frozen)


def set_trainable(model: nn.Module, *, freeze: str | None = None, finetune_last: int | None = None,
                  keep_frozen_eval: bool = True) -> ParameterSplit:
    """Freeze the backbone (or all of it but its last `finetune_last` stages), or unfreeze everything.

    Args:
        model: a Backbone.
        freeze: "backbone": only the head (and the last `finetune_last` stages) train; None: everything trains,
            unless `finetune_last` is given, which implies freezing the rest.
        finetune_last: number of last stages that train with the head (0: the head alone).
        keep_frozen_eval: run the frozen modules in eval mode even while the model trains (BatchNorm keeps
            its statistics, dropout is off), as a frozen feature extractor should.

    Returns:
        The ParameterSplit the decision was made from.

    Raises:
        InputError: an unknown freeze mode, or finetune_last outside 0..number of stages.
    """
    if freeze not in FREEZE_MODES:
        raise InputError(f"freeze must be 'backbone' or None, got {freeze!r}")
    split = split_parameters(model)
    n_stages = len(split.stages)
    if finetune_last is not None and not 0 <= finetune_last <= n_stages:
        raise InputError(f"finetune_last must lie in 0..{n_stages} ({type(model).__name__} has {n_stages} stages), "
                         f"got {finetune_last}")
    _remove_keep_eval(model)
    model.train(model.training)  # undo what an earlier freeze's hooks switched to eval
    if freeze is None and finetune_last is None:
        for p in model.parameters():
            p.requires_grad_(True)
        return split
    trainable = set(split.head)
    for names in split.stages[n_stages - (finetune_last or 0):]:
        trainable |= set(names)
    for name, p in model.named_parameters():
        p.requires_grad_(name in trainable)
    if keep_frozen_eval:
        for m in frozen_modules(model):
            m.register_forward_pre_hook(_keep_eval)
    return split


def apply_transfer(model: nn.Module, *, weights: str | os.PathLike | None = None, freeze: str | None = None,
                   finetune_last: int | None = None, num_classes: int | None = None,
                   keep_frozen_eval: bool = True) -> nn.Module:
    """Prepare a model for transfer learning, in place: load weights, give it a new head, freeze.

    Three classic set-ups:

    - freeze the backbone, train a new head: `freeze="backbone", num_classes=K`;
    - fine-tune the last N stages with the new head: `finetune_last=N, num_classes=K`;
    - fine-tune everything (or train from scratch, without `weights`): `num_classes=K` alone.

    Args:
        model: a Backbone, e.g. `create_model("resnet18", num_classes=K)`.
        weights: a weights file for `cnnkit.models.load_weights` (a classifier of another class count is
            skipped there, with a message); None keeps the model's weights.
        freeze: "backbone" or None (see `set_trainable`).
        finetune_last: stages, counted from the deepest, that train with the head (implies freezing the rest).
        num_classes: replace the classifier (after loading) by a fresh one with this many outputs; None keeps
            the classifier, as loaded from `weights` when the class counts agree.
        keep_frozen_eval: frozen layers run in eval mode while the rest trains (see `set_trainable`).

    Returns:
        The same model, with `requires_grad` set on the parameters that are to train.

    Raises:
        InputError: bad freeze mode, finetune_last or num_classes; or a layer to freeze that the weights file
            does not provide (wrong architecture or input channels).
        FileFormatError, MissingFileError: the weights file cannot be read or matches nothing in the model.
    """
    if num_classes is not None and num_classes < 1:
        raise InputError(f"num_classes must be at least 1, got {num_classes}")
    if freeze not in FREEZE_MODES:  # checked before the (slow) loading, so a typo fails at once
        raise InputError(f"freeze must be 'backbone' or None, got {freeze!r}")
    report = None
    if weights is not None:
        from cnnkit.models.weights import load_weights

        report = load_weights(model, weights)
        log.info("%s", report)
    if num_classes is not None:
        model.reset_classifier(num_classes)
    set_trainable(model, freeze=freeze, finetune_last=finetune_last, keep_frozen_eval=keep_frozen_eval)
    if report is not None:
        _check_frozen_loaded(model, report, weights)
    return model


def _check_frozen_loaded(model: nn.Module, report, weights) -> None:
    """A tensor that the file did not provide and that will not train would stay random for good: refuse."""
    not_loaded = list(report.missing) + [name for name, _, _ in report.shape_mismatch]
    params = dict(model.named_parameters())
    frozen = []
    for name in not_loaded:
        if name in params:
            if not params[name].requires_grad:
                frozen.append(name)
            continue
        owner = model.get_submodule(name.rpartition(".")[0]) if "." in name else model
        owned = list(owner.parameters())
        if owned and not any(p.requires_grad for p in owned):  # a buffer (BatchNorm statistics) of a frozen layer
            frozen.append(name)
    if frozen:
        raise InputError(f"{weights} does not provide {len(frozen)} frozen tensors (e.g. {', '.join(frozen[:3])}): "
                         "they would stay at their random initialisation; use weights of the same architecture and "
                         "input channels, or do not freeze")


def discriminative_param_groups(model: nn.Module, lr: float, *, decay: float = 0.3) -> list[dict]:
    """Optimizer groups with smaller learning rates for shallower stages, for `fit(param_groups=...)`.

    The head gets `lr`, the deepest stage `lr * decay`, the one before `lr * decay**2` ... (the early layers
    hold general features that need little change). Frozen parameters are left out; weights are decayed by
    the config's weight decay, biases and norm scales are not (as `fit` does by default).
    """
    if not 0 < decay <= 1:
        raise InputError(f"decay must lie in (0, 1], got {decay}")
    split = split_parameters(model)
    params = dict(model.named_parameters())
    levels = [(lr, split.head)] + [(lr * decay ** (i + 1), names) for i, names in enumerate(reversed(split.stages))]
    groups = []
    for group_lr, names in levels:
        ps = [params[n] for n in names if params[n].requires_grad]
        weights = [p for p in ps if p.ndim > 1]
        others = [p for p in ps if p.ndim <= 1]
        if weights:
            groups.append({"params": weights, "lr": group_lr})
        if others:
            groups.append({"params": others, "lr": group_lr, "weight_decay": 0.0})
    return groups


def count_trainable(model: nn.Module) -> tuple[int, int]:
    """(trainable parameters, all parameters), in elements."""
    total = sum(p.numel() for p in model.parameters())
    return sum(p.numel() for p in model.parameters() if p.requires_grad), total

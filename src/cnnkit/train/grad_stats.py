"""Per-layer gradient norms and per-step losses, recorded during training by callbacks.

    grads = GradNormRecorder(max_steps=20)         # conv weights' gradient norms, first 20 steps
    losses = LossRecorder()
    fit(model, train, val, config, callbacks=[grads, losses])
    grads.mean_norms()        # {layer name: mean gradient norm}, input to output
    losses.losses             # one training loss per optimizer step

The course explains the trouble of very deep plain networks by their gradients: the early layers'
gradients vanish (or explode) as they are propagated back through many layers. These recorders measure it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn as nn

from cnnkit.train.callbacks import Callback


def layer_grad_norms(model: nn.Module, layer_types: tuple[type[nn.Module], ...] = (nn.Conv2d,),
                     param: str = "weight") -> dict[str, float]:
    """The L2 norm of the gradient of `param` of every layer of the given types, in model order.

    Layers whose parameter has no gradient (frozen, or unused in the last backward pass) are left out.
    """
    norms = {}
    for name, module in model.named_modules():
        if isinstance(module, layer_types):
            p = getattr(module, param, None)
            if isinstance(p, torch.Tensor) and p.grad is not None:
                norms[name] = float(p.grad.detach().float().norm())
    return norms


class GradNormRecorder(Callback):
    """Records `layer_grad_norms` after the backward pass of the first `max_steps` steps (every `every`-th).

    Args:
        layer_types: layer classes to watch (convolutions by default).
        param: the parameter of each layer ("weight").
        max_steps: stop recording after this many optimizer steps (None: record the whole run).
        every: record one step in `every`.

    Attributes:
        layer_names: watched layers, input to output (set at the first record).
        steps: the global step (0-based, before the update) of every record.
        norms: one list of per-layer norms per record, aligned with `layer_names`.
    """

    def __init__(self, layer_types: tuple[type[nn.Module], ...] = (nn.Conv2d,), param: str = "weight",
                 max_steps: int | None = None, every: int = 1):
        if every < 1:
            raise ValueError(f"every must be at least 1, got {every}")
        self.layer_types = layer_types
        self.param = param
        self.max_steps = max_steps
        self.every = every
        self.layer_names: list[str] = []
        self.steps: list[int] = []
        self.norms: list[list[float]] = []

    def on_after_backward(self, trainer) -> None:
        step = trainer.global_step
        if (self.max_steps is not None and step >= self.max_steps) or step % self.every:
            return
        norms = layer_grad_norms(trainer.model, self.layer_types, self.param)
        if not self.layer_names:
            self.layer_names = list(norms)
        self.steps.append(int(step))
        self.norms.append([norms.get(n, float("nan")) for n in self.layer_names])

    def as_array(self) -> np.ndarray:
        """(records, layers) float64."""
        return np.asarray(self.norms, dtype=np.float64).reshape(len(self.norms), len(self.layer_names))

    def mean_norms(self) -> dict[str, float]:
        """Mean over the recorded steps of each layer's gradient norm."""
        mean = self.as_array().mean(axis=0) if self.norms else np.zeros(len(self.layer_names))
        return dict(zip(self.layer_names, (float(v) for v in mean), strict=True))

    def state_dict(self) -> dict[str, Any]:
        return {"layer_names": list(self.layer_names), "steps": list(self.steps),
                "norms": [list(r) for r in self.norms]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.layer_names = list(state["layer_names"])
        self.steps = list(state["steps"])
        self.norms = [list(r) for r in state["norms"]]


class LossRecorder(Callback):
    """Records the training loss of every optimizer step (the epoch means in `fit`'s history hide the shape).

    Attributes:
        steps: global step after each update (1-based).
        losses: the batch's loss before that update.
    """

    def __init__(self):
        self.steps: list[int] = []
        self.losses: list[float] = []

    def on_batch_end(self, trainer, step: int, loss: float) -> None:
        self.steps.append(int(step))
        self.losses.append(float(loss))

    def smoothed(self, window: int = 10) -> np.ndarray:
        """Trailing moving average of the losses (the first values average what there is so far)."""
        x = np.asarray(self.losses, dtype=np.float64)
        if not len(x):
            return x
        c = np.cumsum(np.insert(x, 0, 0.0))
        idx = np.arange(1, len(x) + 1)
        lo = np.maximum(idx - window, 0)
        return (c[idx] - c[lo]) / (idx - lo)

    def state_dict(self) -> dict[str, Any]:
        return {"steps": list(self.steps), "losses": list(self.losses)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.steps, self.losses = list(state["steps"]), list(state["losses"])

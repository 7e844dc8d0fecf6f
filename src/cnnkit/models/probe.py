"""Try a model on an input before real work starts, so that a size or channel count it cannot take becomes one
line in the user's terms (each caller names its own flags) instead of a RuntimeError deep inside."""

from __future__ import annotations

import torch
import torch.nn as nn

from cnnkit.errors import InputError


def forward_error(model: nn.Module, x: torch.Tensor) -> str | None:
    """Run `model(x)` once without gradients. Returns the first line of the RuntimeError it raised (an input the
    layers cannot take), or None when it ran; an InputError (the model's own check) passes through."""
    try:
        with torch.no_grad():
            model(x)
    except InputError:
        raise
    except RuntimeError as e:
        return (str(e).strip().splitlines() or [""])[0]
    return None

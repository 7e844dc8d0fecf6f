"""The training configuration: one dataclass, every field commented, checked once on creation."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from cnnkit.errors import InputError

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("none", "cosine", "step", "onecycle")


@dataclass
class TrainConfig:
    """Everything `fit` needs to know besides the model and the data.

    Two runs with the same config, model initialisation and data give the same weights bit for bit on
    CPU (with `num_workers=0`, or with workers when the augmentation draws its randomness per sample).
    """

    epochs: int = 10  # passes over the training data
    batch_size: int = 64  # images per optimizer step (per process under torchrun)
    optimizer: str = "adamw"  # "sgd" (with momentum, Nesterov off), "adam" or "adamw"
    lr: float = 1e-3  # peak learning rate; "onecycle" starts at lr/25 and ends at lr/25e4
    momentum: float = 0.9  # SGD momentum; beta1 for Adam/AdamW
    weight_decay: float = 0.0  # L2 (sgd, adam) or decoupled (adamw) decay, on weights only, not biases/norms
    schedule: str = "cosine"  # learning-rate shape over the run: "none", "cosine", "step" or "onecycle"
    step_size: int = 10  # "step" schedule: multiply the lr by `gamma` every `step_size` epochs
    gamma: float = 0.1  # "step" schedule: the factor
    warmup_epochs: float = 0.0  # linear warm-up from ~0 to lr over this many epochs (not with "onecycle")
    grad_clip: float | None = None  # clip the global gradient norm to this value; None: no clipping
    early_stopping_patience: int | None = None  # stop after this many epochs without a better val accuracy
    channels_last: bool = False  # NHWC memory layout: faster convolutions on many CPUs
    bf16: bool = False  # bfloat16 autocast for forward passes (CPU or CUDA); weights stay float32
    seed: int = 0  # seeds weights' RNG users (dropout), the data order and augmentation
    num_workers: int = 0  # DataLoader worker processes; 0 loads in the training process
    label_smoothing: float = 0.0  # cross-entropy label smoothing in [0, 1)
    device: str = "cpu"  # "cpu" or "cuda[:N]"; under torchrun with CUDA each rank takes its local GPU
    checkpoint_every: int | None = None  # also checkpoint every N optimizer steps (mid-epoch); None: per epoch only
    eval_batch_size: int = 256  # images per batch when validating (no gradients, so larger is fine)

    def __post_init__(self) -> None:
        self.optimizer = self.optimizer.lower()
        self.schedule = self.schedule.lower()
        if self.optimizer not in OPTIMIZERS:
            raise InputError(f"unknown optimizer {self.optimizer!r}; choose one of {', '.join(OPTIMIZERS)}")
        if self.schedule not in SCHEDULES:
            raise InputError(f"unknown schedule {self.schedule!r}; choose one of {', '.join(SCHEDULES)}")
        for name in ("epochs", "batch_size", "step_size", "eval_batch_size"):
            if int(getattr(self, name)) < 1:
                raise InputError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not self.lr > 0:
            raise InputError(f"lr must be positive, got {self.lr}")
        if self.weight_decay < 0:
            raise InputError(f"weight_decay must be >= 0, got {self.weight_decay}")
        if self.warmup_epochs < 0:
            raise InputError(f"warmup_epochs must be >= 0, got {self.warmup_epochs}")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise InputError(f"grad_clip must be positive (or None for no clipping), got {self.grad_clip}")
        if self.early_stopping_patience is not None and self.early_stopping_patience < 1:
            raise InputError(f"early_stopping_patience must be at least 1, got {self.early_stopping_patience}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise InputError(f"label_smoothing must lie in [0, 1), got {self.label_smoothing}")
        if self.num_workers < 0:
            raise InputError(f"num_workers must be >= 0, got {self.num_workers}")
        if self.checkpoint_every is not None and self.checkpoint_every < 1:
            raise InputError(f"checkpoint_every must be at least 1 (or None), got {self.checkpoint_every}")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (stored in checkpoints and metrics.json)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """Inverse of `to_dict`; unknown keys (from a newer cnnkit) are ignored."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})

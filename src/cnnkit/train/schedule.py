"""Learning-rate schedules as one pure function of the optimizer step.

The loop sets `lr = base_lr * lr_factor(step, ...)` before every optimizer step. A pure function (rather
than a stateful torch scheduler) means the schedule's whole state is the global step, which the checkpoint
already holds, and a resumed run cannot drift from an uninterrupted one.
"""

from __future__ import annotations

import math

ONECYCLE_PCT_START = 0.3  # fraction of the run spent rising (torch.optim.lr_scheduler.OneCycleLR's default)
ONECYCLE_DIV = 25.0  # the one-cycle run starts at lr / 25 ...
ONECYCLE_FINAL_DIV = 1e4  # ... and ends at lr / 25 / 1e4


def _cos_anneal(start: float, end: float, pct: float) -> float:
    return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1.0)


def lr_factor(step: int, *, schedule: str, total_steps: int, steps_per_epoch: int, warmup_steps: int = 0,
              step_size: int = 10, gamma: float = 0.1) -> float:
    """The multiplier of the base learning rate for optimizer step `step` (0-based).

    Args:
        step: the optimizer step about to be taken, 0 .. total_steps - 1.
        schedule: "none" (constant), "cosine" (half a cosine from 1 to 0 over the run), "step" (times `gamma`
            every `step_size` epochs) or "onecycle" (cosine rise from 1/25 to 1 over the first 30%, then cosine
            fall to 1/25e4; the same curve as torch's OneCycleLR without momentum cycling).
        total_steps: optimizer steps in the whole run.
        steps_per_epoch: optimizer steps per epoch (for "step").
        warmup_steps: linear warm-up, factor min(1, (step + 1) / warmup_steps), multiplied onto the schedule
            (ignored by "onecycle", which has its own rise).
        step_size: "step" schedule period, in epochs.
        gamma: "step" schedule factor.
    """
    if schedule == "onecycle":
        peak = float(ONECYCLE_PCT_START * total_steps) - 1.0  # the step at which the lr is highest
        low = 1.0 / ONECYCLE_DIV
        if step <= peak:
            return _cos_anneal(low, 1.0, step / peak) if peak > 0 else 1.0
        last = total_steps - 1.0
        return _cos_anneal(1.0, low / ONECYCLE_FINAL_DIV, (step - peak) / (last - peak)) if last > peak else 1.0
    warm = min(1.0, (step + 1) / warmup_steps) if warmup_steps > 0 else 1.0
    if schedule == "none":
        return warm
    if schedule == "cosine":
        return warm * 0.5 * (1.0 + math.cos(math.pi * step / max(total_steps, 1)))
    if schedule == "step":
        return warm * gamma ** (step // max(steps_per_epoch, 1) // step_size)
    raise ValueError(f"unknown schedule {schedule!r}")

"""The learning-rate schedule: a pure function of where the run stands."""

from __future__ import annotations

import math


def learning_rate(
    step: int, total_steps: int, elapsed: float, budget_seconds: float | None, peak: float, warmup_fraction: float
) -> float:
    """Linear warm-up, then cosine decay to zero, over the run's steps or its time budget, whichever ends first.

    `step` steps of `total_steps` are done after `elapsed` seconds of a `budget_seconds` budget (None: no budget).
    The first step never has a learning rate of zero.
    """
    progress = step / max(1, total_steps)
    if budget_seconds:
        progress = max(progress, elapsed / budget_seconds)
    progress = min(progress, 1.0)
    if progress < warmup_fraction:
        return peak * max(progress / warmup_fraction, 1.0 / max(1, total_steps))
    decay = (progress - warmup_fraction) / max(1e-9, 1 - warmup_fraction)
    return peak * 0.5 * (1 + math.cos(math.pi * decay))

"""The learning-rate schedule: a pure function of where the run stands."""

from __future__ import annotations

import math

FIRST_STEP_SHARE = 1000  # a run timed by its budget alone starts at this share of the peak


def learning_rate(
    step: int,
    total_steps: int | None,
    elapsed: float,
    budget_seconds: float | None,
    peak: float,
    warmup_fraction: float,
) -> float:
    """Linear warm-up, then cosine decay to zero, over the run's steps or its time budget, whichever ends first.

    `step` steps of `total_steps` (None: no step limit) are done after `elapsed` seconds of a `budget_seconds`
    budget (None: no budget); one of the two must be given. The first step never has a learning rate of zero.
    """
    assert total_steps is not None or budget_seconds, "a schedule needs a step count or a time budget"
    progress = step / max(1, total_steps) if total_steps is not None else 0.0
    if budget_seconds:
        progress = max(progress, elapsed / budget_seconds)
    progress = min(progress, 1.0)
    if progress < warmup_fraction:
        return peak * max(progress / warmup_fraction, 1.0 / max(1, total_steps or FIRST_STEP_SHARE))
    decay = (progress - warmup_fraction) / max(1e-9, 1 - warmup_fraction)
    return peak * 0.5 * (1 + math.cos(math.pi * decay))


def open_ended_rate(step: int, warmup_steps: int, peak: float, cooldown: tuple[int, int]) -> float:
    """Warm-up, a constant peak, then a linear cool-down to zero (warm-up, stable, decay) for a run whose end is
    not known in advance: `cooldown` is its (first, last) step, moved earlier when validation stops improving.
    """
    first, last = cooldown
    if step >= first:
        return peak * max(0.0, (last - step) / max(1, last - first))
    if step < warmup_steps:
        return peak * (step + 1) / warmup_steps
    return peak

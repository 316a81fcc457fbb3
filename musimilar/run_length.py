"""How long a training run lasts: given epochs, a time budget, or until validation retrieval stops improving.

With neither `train.epochs` nor `train.minutes` the run is open-ended: the learning rate warms up and then stays
at its peak; once the validation segment retrieval has not improved for `train.patience` epochs (and at least
`train.min_steps` steps are done), the rate cools down linearly to zero over a fifth of the steps done so far
(at least one epoch), and the run stops. A ceiling scaled to the library bounds it: `train.ceiling_epochs`
epochs, at least four times `train.min_steps` steps and at most `train.max_steps`; the cool-down is placed so it
ends at the ceiling at the latest. Without validation tracks (a tiny library, or `val_fraction = 0`) nothing
measures a plateau, and the ceiling is `train.min_steps`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from musimilar.settings import TrainSettings

COOLDOWN_FRACTION = 0.2  # share of the steps done that the final decay lasts (Hägele et al. 2024, "WSD")
CEILING_OVER_MIN_STEPS = 4  # the ceiling is at least this many times min_steps
SCORE_KEY = "val_segment_top1"


@dataclass(frozen=True)
class RunLength:
    epochs: int | None  # the epoch cap: the one given, or the ceiling's; None for a time budget alone
    open_ended: bool  # neither epochs nor minutes given: stop when no longer improving, under the ceiling
    ceiling_steps: int | None  # open-ended runs only


def run_length(train: TrainSettings, steps_per_epoch: int, has_validation: bool) -> RunLength:
    """The run's epoch cap and whether it stops by itself (see the module's docstring for the rule)."""
    if train.epochs is not None or train.minutes is not None:
        return RunLength(train.epochs, False, None)
    ceiling = ceiling_steps(train, steps_per_epoch, has_validation)
    return RunLength(math.ceil(ceiling / steps_per_epoch), True, ceiling)


def ceiling_steps(train: TrainSettings, steps_per_epoch: int, has_validation: bool) -> int:
    if not has_validation:
        return train.min_steps
    scaled = max(train.ceiling_epochs * steps_per_epoch, CEILING_OVER_MIN_STEPS * train.min_steps)
    return min(train.max_steps, scaled)


def default_cooldown(ceiling: int) -> tuple[int, int]:
    """(first, last) step of the decay when no plateau comes first: the last fifth before the ceiling."""
    return ceiling - round(COOLDOWN_FRACTION * ceiling), ceiling


def plateau_cooldown(step: int, steps_per_epoch: int, ceiling: int) -> tuple[int, int]:
    """(first, last) step of the decay that starts now, on a plateau; never past the ceiling."""
    length = max(steps_per_epoch, round(COOLDOWN_FRACTION * step))
    end = min(ceiling, step + length)
    return min(step, end), end


def best_epoch(history: list[dict[str, Any]]) -> int | None:
    """The 1-based epoch with the highest validation retrieval (the earliest among ties); None without one."""
    scored = [(record[SCORE_KEY], -record["epoch"]) for record in history if record.get(SCORE_KEY) is not None]
    return -max(scored)[1] if scored else None


def no_longer_improving(history: list[dict[str, Any]], patience: int, step: int, min_steps: int) -> bool:
    """True once `patience` epochs have passed without a better validation retrieval, after `min_steps` steps."""
    best = best_epoch(history)
    return best is not None and step >= min_steps and history[-1]["epoch"] - best >= patience


def describe_expected_duration(
    length: RunLength, train: TrainSettings, steps_per_epoch: int, steps_done: int, seconds_per_step: float
) -> str:
    """One line for people: how long the run should take at the speed of its first steps, and what ends it."""

    def minutes(steps: float) -> str:
        return f"{max(0.0, steps) * seconds_per_step / 60:.0f} min"

    speed = f"at {1 / max(seconds_per_step, 1e-9):.1f} steps/s, {steps_per_epoch} steps an epoch"
    if length.open_ended:
        earliest = max(train.min_steps, train.patience * steps_per_epoch) - steps_done
        return (
            f"expected duration: at most {minutes(length.ceiling_steps - steps_done)} (the ceiling, "
            f"{length.ceiling_steps} steps, {speed}); it stops sooner, not before about {minutes(earliest)}, once "
            f"validation retrieval has not improved for {train.patience} epochs"
        )
    if length.epochs is None:
        return f"expected duration: {train.minutes:g} min (the time budget; {speed})"
    by_epochs = length.epochs * steps_per_epoch - steps_done
    text = f"expected duration: {minutes(by_epochs)} for {length.epochs} epochs ({speed})"
    if train.minutes is not None and by_epochs * seconds_per_step > train.minutes * 60:
        text += f"; the {train.minutes:g} min time budget ends it first"
    return text

"""How long a run lasts: the ceiling rule, the plateau test and the expected-duration line."""

from __future__ import annotations

from musimilar.run_length import (
    best_epoch,
    ceiling_steps,
    default_cooldown,
    describe_expected_duration,
    no_longer_improving,
    plateau_cooldown,
    run_length,
)
from musimilar.settings import TrainSettings


def history(*scores: float) -> list[dict]:
    return [{"epoch": e, "val_segment_top1": s} for e, s in enumerate(scores, start=1)]


def test_epochs_or_minutes_make_a_run_of_fixed_length() -> None:
    assert run_length(TrainSettings(epochs=7), 10, True) == run_length(TrainSettings(epochs=7, minutes=3), 10, True)
    assert run_length(TrainSettings(epochs=7), 10, True).epochs == 7
    timed = run_length(TrainSettings(minutes=3), 10, True)
    assert timed.epochs is None and not timed.open_ended


def test_the_ceiling_scales_with_the_library_between_its_bounds() -> None:
    train = TrainSettings(min_steps=1000, ceiling_epochs=100, max_steps=100_000)
    assert ceiling_steps(train, 6, True) == 4000  # a tiny library: four times the minimum
    assert ceiling_steps(train, 200, True) == 20_000  # 100 epochs
    assert ceiling_steps(train, 5000, True) == 100_000  # a huge library: the hard maximum
    assert ceiling_steps(train, 200, False) == 1000  # no validation: the minimum alone
    length = run_length(train, 200, True)
    assert length.open_ended and length.ceiling_steps == 20_000 and length.epochs == 100
    assert run_length(train, 300, False).epochs == 4  # whole epochs up to the ceiling


def test_best_epoch_is_the_earliest_highest_score() -> None:
    assert best_epoch(history(0.2, 0.5, 0.5, 0.4)) == 2
    assert best_epoch([{"epoch": 1}]) is None


def test_no_longer_improving_needs_patience_and_the_minimum_steps() -> None:
    flat = history(0.2, 0.5, 0.4, 0.5, 0.45)
    assert no_longer_improving(flat, patience=3, step=500, min_steps=100)
    assert not no_longer_improving(flat, patience=4, step=500, min_steps=100)
    assert not no_longer_improving(flat, patience=3, step=50, min_steps=100)
    assert not no_longer_improving([{"epoch": 1}], patience=1, step=500, min_steps=0)


def test_cooldowns_end_at_the_ceiling_at_the_latest() -> None:
    assert default_cooldown(1000) == (800, 1000)
    assert plateau_cooldown(500, 10, 4000) == (500, 600)  # a fifth of the steps done
    assert plateau_cooldown(20, 10, 4000) == (20, 30)  # at least an epoch
    assert plateau_cooldown(3950, 10, 4000) == (3950, 4000)


def test_expected_duration_names_what_ends_the_run() -> None:
    open_ended = run_length(TrainSettings(), 20, True)
    text = describe_expected_duration(open_ended, TrainSettings(), 20, 10, 0.5)
    assert "at most 33 min" in text and "ceiling" in text and "10 epochs" in text
    fixed = describe_expected_duration(
        run_length(TrainSettings(epochs=10), 20, True), TrainSettings(epochs=10), 20, 0, 3
    )
    assert "10 min for 10 epochs" in fixed
    both = TrainSettings(epochs=10, minutes=2)
    assert "2 min time budget ends it first" in describe_expected_duration(run_length(both, 20, True), both, 20, 0, 3)
    timed = TrainSettings(minutes=5)
    assert "5 min (the time budget" in describe_expected_duration(run_length(timed, 20, True), timed, 20, 0, 3)

"""The learning-rate schedule is a pure function of (step, total steps, elapsed, budget)."""

from __future__ import annotations

import math

import pytest

from musimilar.schedule import learning_rate

PEAK, WARMUP = 1e-3, 0.1


def rate(step: int, total: int = 100, elapsed: float = 0.0, budget: float | None = None) -> float:
    return learning_rate(step, total, elapsed, budget, PEAK, WARMUP)


def test_linear_warm_up_then_cosine_decay_to_zero() -> None:
    assert rate(0) == pytest.approx(PEAK / 100)  # never zero on the first step
    assert rate(5) == pytest.approx(PEAK * 0.5)
    assert rate(10) == pytest.approx(PEAK)
    assert rate(55) == pytest.approx(PEAK * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert rate(100) == pytest.approx(0.0, abs=1e-12)
    assert rate(150) == pytest.approx(0.0, abs=1e-12)  # past the end it stays at zero
    decay = [rate(step) for step in range(10, 101)]
    assert decay == sorted(decay, reverse=True)


def test_a_time_budget_ends_the_schedule_when_it_runs_out_first() -> None:
    assert rate(10, elapsed=30.0, budget=60.0) == pytest.approx(rate(50))  # half the budget: half-way
    assert rate(90, elapsed=1.0, budget=60.0) == pytest.approx(rate(90))  # steps ahead of the clock lead
    assert rate(10, elapsed=60.0, budget=60.0) == pytest.approx(0.0, abs=1e-12)


def test_no_budget_means_steps_alone() -> None:
    assert rate(40, elapsed=1e9, budget=None) == rate(40)

"""The learning-rate schedule is a pure function of (step, total steps, elapsed, budget)."""

from __future__ import annotations

import math

import pytest

from musimilar.schedule import learning_rate, open_ended_rate

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


def test_a_budget_alone_times_the_schedule() -> None:
    assert learning_rate(0, None, 0.0, 60.0, PEAK, WARMUP) > 0
    assert learning_rate(5, None, 30.0, 60.0, PEAK, WARMUP) == pytest.approx(rate(50))
    assert learning_rate(5, None, 60.0, 60.0, PEAK, WARMUP) == pytest.approx(0.0, abs=1e-12)


def test_open_ended_rate_warms_up_holds_then_cools_down_to_zero() -> None:
    cooldown = (800, 1000)
    rates = [open_ended_rate(step, 100, PEAK, cooldown) for step in range(1100)]
    assert rates[0] == pytest.approx(PEAK / 100)  # never zero on the first step
    assert rates[:100] == sorted(rates[:100]) and rates[99] == pytest.approx(PEAK)
    assert all(r == PEAK for r in rates[100:800])  # stable while validation improves
    assert rates[900] == pytest.approx(PEAK / 2)
    assert rates[800:] == sorted(rates[800:], reverse=True)
    assert rates[1000] == rates[1099] == 0.0


def test_an_early_cooldown_starts_from_the_peak_and_ends_at_zero() -> None:
    early = (300, 360)  # a plateau at step 300: a fifth of 300 steps of decay
    assert open_ended_rate(299, 100, PEAK, early) == PEAK
    assert open_ended_rate(300, 100, PEAK, early) == pytest.approx(PEAK)
    assert open_ended_rate(330, 100, PEAK, early) == pytest.approx(PEAK / 2)
    assert open_ended_rate(360, 100, PEAK, early) == 0.0

"""`musimilar --threads N`: the cap reaches the settings of every command (and the processes they start)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from musimilar.cli.app import app


def test_threads_flag_sets_the_cap_for_the_command(runner: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MUSIMILAR_THREADS", "9")  # the flag wins over the variable; restored after the test
    result = runner.invoke(app, ["--threads", "1", "config", "show"])
    assert result.exit_code == 0, result.output
    assert "[system]\nthreads = 1" in result.output


def test_threads_must_be_positive(runner: CliRunner) -> None:
    result = runner.invoke(app, ["--threads", "0", "config", "show"])
    assert result.exit_code == 2

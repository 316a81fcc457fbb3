"""Fixtures of the command-line tests: a clean environment and a runner."""

from __future__ import annotations

import os

import pytest
from typer.testing import CliRunner


@pytest.fixture(autouse=True)
def no_musimilar_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The commands see no MUSIMILAR_* variable of the machine running the tests."""
    for name in list(os.environ):
        if name.startswith("MUSIMILAR_"):
            monkeypatch.delenv(name)


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()

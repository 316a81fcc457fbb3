"""Fixtures of the player tests: a synthesised music folder, a real Supysonic and a real MPD serving it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from real_players import Mpd, Supysonic, running_mpd, running_supysonic

from musimilar.synth import write_library


@pytest.fixture(autouse=True)
def no_musimilar_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The commands see no MUSIMILAR_* variable of the machine running the tests."""
    for name in list(os.environ):
        if name.startswith("MUSIMILAR_"):
            monkeypatch.delenv(name)


@pytest.fixture(scope="session")
def player_music(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 styles x 3 clips of 3 s (mp3, flac, ogg): the music folder the servers and players scan."""
    folder = tmp_path_factory.mktemp("player-music")
    write_library(folder, styles=3, per_style=3, seconds=3.0, sample_rate=22050, formats=("mp3", "flac", "ogg"))
    return folder


@pytest.fixture(scope="module")
def supysonic(tmp_path_factory: pytest.TempPathFactory, player_music: Path) -> Iterator[Supysonic]:
    with running_supysonic(tmp_path_factory.mktemp("supysonic"), player_music) as server:
        yield server


@pytest.fixture
def mpd_server(tmp_path: Path, player_music: Path) -> Iterator[Mpd]:
    with running_mpd(tmp_path / "mpd", player_music) as server:
        yield server

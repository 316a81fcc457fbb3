"""CUE sheets: a single-file album becomes one catalog track per entry, embedded and recommended like any track."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from musimilar.audio import decode
from musimilar.catalog import Catalog
from musimilar.cli.app import app
from musimilar.convert import convert
from musimilar.cue import read_cue
from musimilar.home import Home
from musimilar.mel import LogMel
from musimilar.settings import Settings
from musimilar.synth import get_style, synthesise_clip, write_audio

RATE = 22050
PART_SECONDS = 8.0
STYLES = ("techno", "piano-ballad", "string-pad")
SHEET = """\ufeffREM GENRE Test
PERFORMER "The Synths"
TITLE "Three Parts"
FILE "album.wav" WAVE
  TRACK 01 AUDIO
    TITLE "Beat"
    INDEX 01 00:00:00
  TRACK 02 AUDIO
    TITLE "Ballad – Ünïcødé"
    PERFORMER "Guest"
    INDEX 00 00:07:50
    INDEX 01 00:08:00
  TRACK 03 AUDIO
    TITLE "Pad"
    INDEX 01 00:16:00
"""


@pytest.fixture
def album(tmp_path: Path) -> Path:
    """album/album.flac (three 8 s parts of three styles) and album/album.cue naming it album.wav, as rippers do."""
    parts = [
        synthesise_clip(get_style(style), PART_SECONDS, RATE, np.random.default_rng(seed), stereo=False)
        for seed, style in enumerate(STYLES)
    ]
    folder = tmp_path / "music" / "album"
    write_audio(folder / "album.flac", np.concatenate(parts), RATE)
    (folder / "album.cue").write_text(SHEET, encoding="utf-8")
    return folder


def test_read_cue(album: Path) -> None:
    tracks = read_cue(album / "album.cue")
    assert [(t.number, t.start, t.end) for t in tracks] == [(1, 0.0, 8.0), (2, 8.0, 16.0), (3, 16.0, None)]
    assert tracks[0].file == album / "album.flac"  # the sheet's album.wav is the flac beside it
    assert tracks[1].labels() == {"title": "Ballad – Ünïcødé", "artist": "Guest", "album": "Three Parts"}
    assert tracks[2].labels()["artist"] == "The Synths"


def test_an_unusable_sheet_is_ignored(tmp_path: Path) -> None:
    (tmp_path / "lost.cue").write_text('FILE "gone.flac" WAVE\n  TRACK 01 AUDIO\n    INDEX 01 00:00:00\n')
    assert read_cue(tmp_path / "lost.cue") == []


def test_each_entry_is_a_track(album: Path, tmp_path: Path) -> None:
    home = Home.open(tmp_path / "home")
    report = convert(home, [album.parent], Settings(), workers=1)
    assert (report.scanned, report.new, report.converted, report.failed, report.ignored) == (1, 3, 3, [], {})
    with Catalog(home.catalog_path) as catalog:
        tracks = catalog.tracks()
    flac = album / "album.flac"
    assert [t.path for t in tracks] == [f"{flac}#01", f"{flac}#02", f"{flac}#03"]  # the whole file is not listed
    assert [t.span for t in tracks] == [(0.0, 8.0), (8.0, 16.0), (16.0, None)]
    assert [t.duration for t in tracks] == pytest.approx([8.0, 8.0, 8.0])
    assert tracks[1].labels["title"] == "Ballad – Ünïcødé" and tracks[1].labels["folder"] == "album"

    settings = Settings()
    middle, _ = decode(flac, settings.audio, span=(8.0, 16.0))
    whole, _ = decode(flac, settings.audio)
    np.testing.assert_array_equal(middle, whole[int(8 * RATE) : int(16 * RATE)])
    with torch.inference_mode():
        expected = LogMel(settings.audio, settings.mel)(torch.from_numpy(middle)).numpy()
    from tests.test_convert import cached_logmels

    np.testing.assert_allclose(cached_logmels(home)[f"{flac}#02"], expected, rtol=2**-10, atol=1e-3)

    again = convert(home, [album.parent], Settings(), workers=1)
    assert (again.unchanged, again.converted, again.new) == (3, 0, 0)


def test_a_sheet_added_later_replaces_the_whole_file(album: Path, tmp_path: Path) -> None:
    sheet = (album / "album.cue").read_text(encoding="utf-8")
    (album / "album.cue").unlink()
    home = Home.open(tmp_path / "home")
    convert(home, [album.parent], Settings(), workers=1)
    (album / "album.cue").write_text(sheet.replace("00:16:00", "00:12:00"), encoding="utf-8")
    report = convert(home, [album.parent], Settings(), workers=1)
    assert (report.new, report.missing, report.converted) == (3, 1, 3)
    with Catalog(home.catalog_path) as catalog:
        assert [t.span for t in catalog.tracks()] == [(0.0, 8.0), (8.0, 12.0), (12.0, None)]
        assert catalog.status_counts() == {"ok": 3, "missing": 1}

    (album / "album.cue").write_text(sheet, encoding="utf-8")  # an edited sheet moves a track: converted again
    edited = convert(home, [album.parent], Settings(), workers=1)
    assert (edited.changed, edited.converted) == (2, 2)


OLD_SCHEMA = """
CREATE TABLE tracks (id INTEGER PRIMARY KEY, path TEXT NOT NULL UNIQUE, size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL, fingerprint TEXT NOT NULL, version INTEGER NOT NULL DEFAULT 1,
    status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'ok', 'failed', 'missing')), error TEXT,
    duration REAL, sample_rate INTEGER, channels INTEGER, labels TEXT NOT NULL DEFAULT '{}',
    added_at REAL NOT NULL, updated_at REAL NOT NULL);
CREATE TABLE spectrograms (track_id INTEGER PRIMARY KEY REFERENCES tracks (id) ON DELETE CASCADE,
    shard INTEGER NOT NULL, offset INTEGER NOT NULL, frames INTEGER NOT NULL);
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT INTO tracks (path, size, mtime_ns, fingerprint, status, labels, added_at, updated_at)
    VALUES ('/music/a.mp3', 10, 1, 'f', 'ok', '{"folder": "music"}', 0, 0);
"""


def test_a_catalog_of_the_first_schema_still_opens(tmp_path: Path) -> None:
    path = tmp_path / "catalog.sqlite"
    with sqlite3.connect(path) as old:
        old.executescript(OLD_SCHEMA)
    with Catalog(path) as catalog:
        [track] = catalog.tracks()
    assert (track.path, track.labels, track.span, track.audio_path) == ("/music/a.mp3", {"folder": "music"}, None,
                                                                         Path("/music/a.mp3"))  # fmt: skip


def test_cue_tracks_are_embedded_and_recommended(trained_home, album: Path, tmp_path: Path) -> None:
    shutil.copytree(trained_home[0].root, tmp_path / "home")
    runner = CliRunner()
    home = str(tmp_path / "home")
    embedded = runner.invoke(app, ["embed", str(album.parent), "--home", home, "--format", "json"])
    assert embedded.exit_code == 0, embedded.output
    assert json.loads(embedded.stdout)["embedded"] == 3
    with Catalog(Path(home) / "catalog.sqlite") as catalog:
        ballad = catalog.track_by_path(Path(f"{album / 'album.flac'}#02"))
    assert ballad is not None
    answer = runner.invoke(app, ["recommend", str(ballad.id), "--home", home, "--format", "json", "-k", "40"])
    assert answer.exit_code == 0, answer.output
    found = {item["path"]: item for item in json.loads(answer.stdout)}
    neighbour = found[f"{album / 'album.flac'}#01"]
    assert neighbour["labels"]["title"] == "Beat" and neighbour["labels"]["album"] == "Three Parts"
    assert f"{album / 'album.flac'}#02" not in found  # never its own neighbour

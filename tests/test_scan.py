"""Scanning tells the whole truth: every audio file is converted or failed with its reason, the rest is counted."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from musimilar.cli.app import app
from musimilar.convert import convert
from musimilar.home import Home
from musimilar.scan import describe_ignored, scan
from musimilar.settings import Settings
from musimilar.synth import get_style, synthesise_clip, write_audio

# what an iTunes, WMA and web-rip library holds beside the usual formats
LIBRARY_FORMATS = ("m4a", "alac.m4a", "wma", "webm", "opus", "mp3", "ogg", "flac", "wav", "mka", "aac", "wv")
NOT_AUDIO = {"cover.jpg": 3, "album.cue": 1, "rip.log": 1, "info.nfo": 1, "README": 1}


@pytest.fixture(scope="module")
def mixed_library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("mixed")
    for seed, extension in enumerate(LIBRARY_FORMATS):
        clip = synthesise_clip(get_style("techno"), 3.0, 44100, np.random.default_rng(seed), stereo=True)
        write_audio(root / f"album-{seed % 3}" / f"track-{seed:02d}.{extension}", clip, 44100)
    for name, count in NOT_AUDIO.items():
        for copy in range(count):
            (root / f"album-{copy}" / name).write_text("not audio\n")
    (root / "album-0" / ".DS_Store").write_bytes(b"\0")  # hidden: neither audio nor worth a mention
    return root


def test_scan_counts_what_is_not_audio(mixed_library: Path) -> None:
    found = scan([mixed_library])
    assert len(found.files) == len(LIBRARY_FORMATS)
    assert dict(found.ignored) == {".jpg": 3, ".cue": 1, ".log": 1, ".nfo": 1, "(no extension)": 1}
    assert describe_ignored({".jpg": 412, ".cue": 3}) == "412 .jpg, 3 .cue"


def test_every_format_of_the_library_converts(mixed_library: Path, tmp_path: Path) -> None:
    report = convert(Home.open(tmp_path / "home"), [mixed_library], Settings(), workers=2)
    assert (report.scanned, report.converted, report.failed) == (len(LIBRARY_FORMATS), len(LIBRARY_FORMATS), [])
    assert report.ignored == {".jpg": 3, ".cue": 1, ".log": 1, ".nfo": 1, "(no extension)": 1}


def test_convert_reports_what_it_ignored(mixed_library: Path, tmp_path: Path, runner: CliRunner) -> None:
    home = tmp_path / "home"
    result = runner.invoke(app, ["convert", str(mixed_library), "--home", str(home), "--format", "json"])
    assert result.exit_code == 0, result.output
    assert "ignored: 3 .jpg, 1 (no extension), 1 .cue, 1 .log, 1 .nfo" in result.stderr
    summary = json.loads(result.stdout)
    assert summary["ignored"][".jpg"] == 3 and summary["converted"] == len(LIBRARY_FORMATS)


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()

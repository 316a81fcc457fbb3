"""`musimilar demo`: synthesise, convert, train, embed, index and recommend, and report the same-style share."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from musimilar.cli.app import app
from musimilar.demo import DemoScale, run_demo

TINY = DemoScale(
    styles=3,
    clips_per_style=5,
    clip_seconds=6.0,
    training=(
        ("train.epochs", 4),
        ("train.batch_size", 12),
        ("train.crops_per_track", 4),
        ("train.val_fraction", 0.0),
        ("augment.crop_seconds", 2.0),
        ("embed.crop_seconds", 2.0),
        ("embed.crops", 4),
        ("train.loader_workers", 1),
    ),
)


def test_a_small_demo_runs_end_to_end_and_beats_chance(tmp_path: Path) -> None:
    messages: list[str] = []
    report = run_demo(tmp_path / "demo", messages.append, scale=TINY)
    assert report.tracks == 15 and len(report.queries) == 3
    assert all(len(query.results) == 5 for query in report.queries)
    assert report.same_style_share > report.chance + 0.2
    assert (Path(report.home) / "index" / "index.json").is_file()
    assert any("training" in m for m in messages)


@pytest.mark.slow
def test_the_demo_command_at_full_size(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["demo", str(tmp_path / "demo"), "--format", "json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["same_style_share"] > 2 * report["chance"]

"""The examples in examples/ work: the shell scripts parse, and library_api.py and nightly.sh run on a trained home."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from musimilar.synth import write_library

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SHELL_SCRIPTS = sorted(EXAMPLES.glob("*.sh"))
PLAYLIST_SIZE = 4


def environment(**extra: str) -> dict[str, str]:
    """The test's environment with this venv's `musimilar` and `python3` first on PATH, on one CPU thread."""
    bin_dir = str(Path(sys.executable).parent)
    inherited = {name: value for name, value in os.environ.items() if not name.startswith("MUSIMILAR_")}
    return {
        **inherited,
        "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""),
        "OMP_NUM_THREADS": "1",
        "MUSIMILAR_EMBED_DEVICE": "cpu",
        **extra,
    }


def test_the_documented_examples_are_there() -> None:
    names = {path.name for path in EXAMPLES.iterdir()}
    assert {"nightly.sh", "slurm-embed-array.sh", "torchrun-multinode.sh", "library_api.py"} <= names


@pytest.mark.parametrize("script", SHELL_SCRIPTS, ids=lambda path: path.name)
def test_a_shell_example_parses_and_is_executable(script: Path) -> None:
    completed = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert completed.returncode == 0, completed.stderr
    assert os.access(script, os.X_OK)
    assert "set -euo pipefail" in script.read_text()


def test_library_api_recommends_and_embeds_a_file(trained_home) -> None:
    home, library, tracks = trained_home
    query = tracks[0].path
    completed = subprocess.run(
        [sys.executable, str(EXAMPLES / "library_api.py"), str(home.root), str(query), "5"],
        capture_output=True,
        text=True,
        timeout=300,
        env=environment(),
    )
    assert completed.returncode == 0, completed.stderr
    lines = completed.stdout.splitlines()
    count = next(row for row, line in enumerate(lines) if line.startswith("radio: "))
    ranked = [line.split() for line in lines[:count]]
    radio = lines[count].removeprefix("radio: ").split(" -> ")
    assert len(radio) == 3 and query.name not in radio
    # near-duplicates of the query and of better results are left out, so there may be fewer than k
    assert 1 <= count <= 5 and [int(fields[0]) for fields in ranked] == list(range(1, count + 1))
    similarities = [float(fields[1]) for fields in ranked]
    assert similarities == sorted(similarities, reverse=True)
    paths = [Path(fields[2]) for fields in ranked]
    assert all(path.is_file() and library in path.parents for path in paths)
    assert query.resolve() not in paths  # the query itself is never recommended
    assert "norm 1.000" in lines[count + 1]
    assert lines[count + 2].startswith(f"closest stored track: {library}")


def test_library_api_says_when_the_home_has_no_model(tmp_path: Path, trained_home) -> None:
    completed = subprocess.run(
        [sys.executable, str(EXAMPLES / "library_api.py"), str(tmp_path), str(trained_home[2][0].path)],
        capture_output=True,
        text=True,
        timeout=300,
        env=environment(),
    )
    assert completed.returncode == 5  # not ready, as the CLI
    assert "no trained model" in completed.stderr


def test_the_nightly_job_takes_in_new_files_rebuilds_the_index_and_writes_playlists(
    trained_home, tmp_path: Path
) -> None:
    trained, _, tracks = trained_home
    home = Path(shutil.copytree(trained.root, tmp_path / "home"))
    music = tmp_path / "music"
    new = write_library(music, styles=["folk-guitar"], per_style=2, seconds=5.0, seed=11)
    (music / "broken.mp3").write_text("this is not audio\n")
    gone = tmp_path / "gone.wav"
    seeds = tmp_path / "seeds.txt"
    seeds.write_text(f"# seeds of tonight's playlists\n\n{new[0].path}\n{tracks[0].path}\n{gone}\n")
    playlists = tmp_path / "playlists"

    completed = subprocess.run(
        ["bash", str(EXAMPLES / "nightly.sh"), str(music), str(seeds), str(playlists)],
        capture_output=True,
        text=True,
        timeout=300,
        env=environment(
            MUSIMILAR_HOME=str(home), PLAYLIST_SIZE=str(PLAYLIST_SIZE), CONVERT_WORKERS="1", PYTHON=sys.executable
        ),
    )

    assert completed.returncode == 3, completed.stderr  # a file and a seed failed; the rest was done
    assert "broken.mp3" in completed.stderr and str(gone) in completed.stderr
    assert "rebuilding it" in completed.stderr
    written = {path.name: path for path in playlists.glob("*.m3u")}
    assert set(written) == {f"like-{new[0].path.stem}.m3u", f"like-{tracks[0].path.stem}.m3u"}
    for seed in (new[0].path, tracks[0].path):
        lines = written[f"like-{seed.stem}.m3u"].read_text().splitlines()
        assert lines[0] == "#EXTM3U"
        entries = [Path(line) for line in lines[1:] if not line.startswith("#")]
        assert 1 <= len(entries) <= PLAYLIST_SIZE
        assert all(entry.is_file() for entry in entries) and seed.resolve() not in entries
    assert not list(playlists.glob(".*"))  # no temporary files left behind

    info = subprocess.run(
        ["musimilar", "info", "--format", "json"],
        capture_output=True,
        text=True,
        timeout=120,
        env=environment(MUSIMILAR_HOME=str(home)),
        check=True,
    )
    status = json.loads(info.stdout)
    assert status["tracks"]["ok"] == len(tracks) + len(new)
    assert [item["path"] for item in status["tracks"]["failures"]] == [str(music / "broken.mp3")]
    assert status["embeddings"]["up_to_date"] and status["embeddings"]["count"] == len(tracks) + len(new)
    assert status["index"]["up_to_date"] and status["index"]["count"] == len(tracks) + len(new)

"""The beets plugin in a real beets library: `beet import` keeps the home up to date, `beet similar` answers."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from musimilar.synth import write_library

REPOSITORY = Path(__file__).resolve().parents[2]


def _beet_executable() -> str:
    return str(Path(sys.executable).parent / "beet")  # the test environment's beets


@pytest.fixture
def beets(tmp_path: Path, trained_home):
    """A beets config with the plugin, over a copy of the trained home; returns run(*args) -> CompletedProcess."""
    home, library, _ = trained_home
    home_copy = tmp_path / "home"
    shutil.copytree(home.root, home_copy)
    beetsdir = tmp_path / "beets"
    beetsdir.mkdir()
    (beetsdir / "config.yaml").write_text(
        f"directory: {tmp_path / 'beets-music'}\n"
        f"library: {beetsdir / 'library.db'}\n"
        "plugins: musimilar\n"
        "import:\n  copy: no\n  move: no\n  write: no\n  log:\n  duplicate_action: keep\n"
        f"musimilar:\n  home: {home_copy}\n  k: 3\n",
        encoding="utf-8",
    )
    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith("MUSIMILAR_")},
        "BEETSDIR": str(beetsdir),
        "PYTHONPATH": os.pathsep.join([str(REPOSITORY), os.environ.get("PYTHONPATH", "")]),
        "HOME": str(tmp_path),
    }

    def run(*arguments: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [_beet_executable(), *arguments], env=environment, capture_output=True, text=True, timeout=300
        )

    return run, home_copy, library


def test_beet_similar_lists_neighbours_writes_a_playlist_and_says_when_nothing_matches(beets, tmp_path):
    run, _, library = beets
    imported = run("import", "-A", "-s", "-q", str(library))
    assert imported.returncode == 0, imported.stderr
    seed = sorted((library / "techno").glob("*.*"))[0]
    playlist = tmp_path / "out" / "like.m3u8"
    answer = run("similar", f"path:{seed}", "-k", "4", "--playlist", str(playlist))
    assert answer.returncode == 0, answer.stderr
    lines = answer.stdout.splitlines()
    assert len(lines) == 4 and all(float(line.split()[0]) <= 1.0 for line in lines)
    paths = [line for line in playlist.read_text(encoding="utf-8").splitlines() if not line.startswith("#")]
    assert len(paths) == 4 and str(seed) not in paths
    assert sum(Path(p).parent.name == "techno" for p in paths) >= 3  # neighbours follow the style
    nothing = run("similar", "title:no-such-song")
    assert nothing.returncode != 0 and nothing.stderr.strip() == "error: no track matches 'title:no-such-song'"


def test_import_converts_and_embeds_the_new_files(beets, tmp_path):
    from musimilar.catalog import Catalog
    from musimilar.embeddings import load_embeddings
    from musimilar.home import Home

    run, home_copy, _ = beets
    new = write_library(tmp_path / "new-music", styles=["techno"], per_style=1, seconds=10.0, seed=7)[0].path
    imported = run("import", "-A", "-s", "-q", str(new.parent))
    assert imported.returncode == 0, imported.stderr
    home = Home.open(home_copy, create=False)
    with Catalog(home.catalog_path) as catalog:
        track = catalog.track_by_path(new.resolve())
    assert track is not None and track.status == "ok"
    assert load_embeddings(home.embeddings_dir).row_of(track.id) is not None

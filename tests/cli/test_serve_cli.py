"""`musimilar map` writes the map as HTML or PNG; `path` walks A to B; both refuse what they cannot do in one line."""

from __future__ import annotations

import json
import shutil
import socket
from pathlib import Path

import pytest

from musimilar.cli.app import app


@pytest.fixture(scope="module")
def home_copy(trained_home, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("map-cli") / "home"
    shutil.copytree(trained_home[0].root, root)
    return root


def test_map_as_a_self_contained_html_page(runner, home_copy: Path, tmp_path: Path) -> None:
    out = tmp_path / "map.html"
    result = runner.invoke(
        app, ["map", "--home", str(home_copy), "--by", "folder", "--out", str(out), "--format", "json"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report == {"out": str(out), "method": "pca", "count": 32, "colour_by": "folder"}
    page = out.read_text(encoding="utf-8")
    assert "Plotly" in page and "scattergl" in page and "/static/" not in page  # nothing to fetch: opens from disk
    assert '"count":32' in page.replace(" ", "") and '"folder"' in page


def test_map_as_a_png(runner, home_copy: Path, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    out = tmp_path / "map.png"
    result = runner.invoke(app, ["map", "--home", str(home_copy), "--by", "folder", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--by", "mood"], "--by mood: no track has this label"),
        (["--out", "map.svg"], "written as .html or .png"),
    ],
)
def test_map_refuses_in_one_line(runner, home_copy: Path, tmp_path: Path, arguments: list[str], message: str) -> None:
    arguments = [a if a != "map.svg" else str(tmp_path / a) for a in arguments]
    result = runner.invoke(app, ["map", "--home", str(home_copy), *arguments])
    assert result.exit_code == 1 and message in result.output and "Traceback" not in result.output


def test_map_of_a_home_without_embeddings_is_not_ready(runner, tmp_path: Path) -> None:
    (tmp_path / "home").mkdir()
    result = runner.invoke(app, ["map", "--home", str(tmp_path / "home"), "--out", str(tmp_path / "m.html")])
    assert result.exit_code == 5 and "no embeddings" in result.output


def test_serve_without_a_home_says_so(runner, tmp_path: Path) -> None:
    result = runner.invoke(app, ["serve", "--home", str(tmp_path / "nowhere")])
    assert result.exit_code == 1 and "no library home here" in result.output


@pytest.mark.parametrize("workers", ["1", "2"])
def test_serve_on_a_port_in_use_says_so_in_one_line(runner, home_copy: Path, workers: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        result = runner.invoke(app, ["serve", "--home", str(home_copy), "--port", port, "--workers", workers])
    assert result.exit_code == 1 and f"127.0.0.1:{port}: cannot listen there" in result.output
    assert "Traceback" not in result.output


def test_path_walks_from_one_track_to_another(runner, home_copy: Path) -> None:
    result = runner.invoke(app, ["path", "1", "32", "--steps", "4", "--home", str(home_copy), "--format", "json"])
    assert result.exit_code == 0, result.output
    steps = json.loads(result.stdout)
    assert [s["rank"] for s in steps] == [1, 2, 3, 4] and not {1, 32} & {s["track_id"] for s in steps}

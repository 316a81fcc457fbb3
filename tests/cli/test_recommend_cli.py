"""The whole flow through the command line: train -> embed -> index -> recommend, on a synthesised library."""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from musimilar.cli.app import app
from musimilar.embeddings import load_embeddings
from musimilar.errors import EXIT_NOT_READY, EXIT_PARTIAL
from musimilar.synth import get_style, synthesise_clip, write_audio

TINY_CONFIG = """
[model]
channels = [16, 32, 64]
[augment]
crop_seconds = 2.0
[train]
epochs = 6
batch_size = 16
crops_per_track = 4
val_fraction = 0.2
loader_workers = 1
[embed]
crops = 4
crop_seconds = 2.0
"""
K = 5


def run(*args: str, stdin: str | None = None):  # noqa: ANN201 - typer's Result
    return CliRunner().invoke(app, list(args), input=stdin)


@pytest.fixture(scope="module")
def trained(synth_library: tuple[Path, list], tmp_path_factory: pytest.TempPathFactory) -> dict:
    directory, tracks = synth_library
    root = tmp_path_factory.mktemp("flow")
    home = root / "home"
    home.mkdir()
    (home / "musimilar.toml").write_text(TINY_CONFIG)
    result = run("train", str(directory), "--home", str(home), "--device", "cpu", "--format", "json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    return {"home": home, "tracks": tracks, "summary": summary, "root": root}


def recommend_json(home: Path, *queries: str) -> list[dict]:
    result = run("recommend", *queries, "--home", str(home), "--k", str(K), "--format", "json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_train_ends_with_embeddings_and_an_index(trained: dict) -> None:
    summary = trained["summary"]
    assert summary["embed"]["embedded"] == len(trained["tracks"])
    assert summary["index"]["count"] == len(trained["tracks"])
    assert (trained["home"] / "index" / "index.json").is_file()


def test_recommendations_share_the_query_style_more_than_chance(trained: dict) -> None:
    style_of = {str(t.path.resolve()): t.style for t in trained["tracks"]}
    same = total = 0
    for track in trained["tracks"]:
        results = recommend_json(trained["home"], str(track.path))
        assert len(results) == K
        assert str(track.path.resolve()) not in {r["path"] for r in results}
        same += sum(style_of[r["path"]] == track.style for r in results)
        total += len(results)
    per_style = len(trained["tracks"]) // 4
    chance = (per_style - 1) / (len(trained["tracks"]) - 1)
    assert same / total > chance + 0.15


def test_json_results_carry_the_documented_fields(trained: dict, tmp_path: Path) -> None:
    query = trained["tracks"][0].path
    results = recommend_json(trained["home"], str(query))
    for rank, item in enumerate(results, start=1):
        assert item["rank"] == rank
        assert isinstance(item["track_id"], int)
        assert Path(item["path"]).is_absolute()
        assert -1.0 <= item["similarity"] <= 1.0
        assert item["labels"]["folder"]
    similarities = [item["similarity"] for item in results]
    # The order is CSLS's (hubs move down; on by default), so cosines fall only roughly; without it, strictly.
    assert max(similarities) - similarities[0] < 0.05
    plain = _config_with(tmp_path, "[retrieval]\ncsls_k = 0\n")
    home = tmp_path / "home"
    shutil.copytree(trained["home"], home)
    assert run("embed", "--home", str(home), "--config", str(plain)).exit_code == 0  # refits: no CSLS
    cosines = [item["similarity"] for item in recommend_json(home, str(query), "--config", str(plain))]
    assert cosines == sorted(cosines, reverse=True)


def test_a_track_id_and_several_queries_work(trained: dict) -> None:
    by_id = recommend_json(trained["home"], "1")
    assert 1 not in {item["track_id"] for item in by_id}
    two = [str(t.path) for t in trained["tracks"][:2]]
    combined = recommend_json(trained["home"], *two)
    assert len(combined) == K
    assert not {item["path"] for item in combined} & {str(Path(p).resolve()) for p in two}


def test_csv_m3u_and_paths_outputs_parse(trained: dict) -> None:
    query = str(trained["tracks"][0].path)
    home = str(trained["home"])
    rows = list(
        csv.DictReader(io.StringIO(run("recommend", query, "--home", home, "--k", "3", "--format", "csv").stdout))
    )
    assert [int(row["rank"]) for row in rows] == [1, 2, 3]
    assert all(Path(row["path"]).is_file() for row in rows)
    m3u = run("recommend", query, "--home", home, "--k", "3", "--format", "m3u").stdout.splitlines()
    assert m3u[0] == "#EXTM3U"
    assert [line for line in m3u if not line.startswith("#")] == [row["path"] for row in rows]
    paths = run("recommend", query, "--home", home, "--k", "3", "--format", "paths").stdout.split()
    assert paths == [row["path"] for row in rows]


def test_stdin_batch_answers_each_line_and_reports_failures(trained: dict, tmp_path: Path) -> None:
    queries = [str(trained["tracks"][1].path), str(tmp_path / "missing.mp3"), "2"]
    result = run(
        "recommend",
        "-",
        "--home",
        str(trained["home"]),
        "--k",
        "2",
        "--format",
        "json",
        stdin="\n".join(queries) + "\n",
    )
    assert result.exit_code == EXIT_PARTIAL
    answers = json.loads(result.stdout)
    assert [a["query"] for a in answers] == queries
    assert len(answers[0]["results"]) == 2 and answers[0]["error"] is None
    assert answers[1]["results"] == [] and "missing.mp3" in answers[1]["error"]
    assert len(answers[2]["results"]) == 2


def test_a_query_that_does_not_decode_is_a_one_line_error(trained: dict, tmp_path: Path) -> None:
    bad = tmp_path / "broken.mp3"
    bad.write_text("this is not audio")
    result = run("recommend", str(bad), "--home", str(trained["home"]))
    assert result.exit_code != 0
    assert "broken.mp3" in result.stderr and "Traceback" not in result.output
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_new_file_outside_the_library_is_embedded_on_the_fly(trained: dict, tmp_path: Path) -> None:
    clip = synthesise_clip(get_style("techno"), 6.0, 22050, np.random.default_rng(99))
    query = tmp_path / "new techno.ogg"
    write_audio(query, clip, 22050)
    results = recommend_json(trained["home"], str(query))
    assert len(results) == K


def test_shards_merge_to_the_same_embeddings_as_one_run(trained: dict, tmp_path: Path) -> None:
    home = tmp_path / "home"
    shutil.copytree(trained["home"], home)
    whole = load_embeddings(home / "embeddings", mmap=False)
    folders = []
    for shard in ("1/3", "2/3", "3/3"):
        result = run("embed", "--home", str(home), "--shard", shard, "--device", "cpu", "--format", "json")
        assert result.exit_code == 0, result.output
        folders.append(json.loads(result.stdout)["directory"])
    shutil.rmtree(home / "embeddings")
    merged_run = run("embed", "--home", str(home), "--merge", *folders)
    assert merged_run.exit_code == 0, merged_run.output
    merged = load_embeddings(home / "embeddings", mmap=False)
    np.testing.assert_array_equal(merged.track_ids, whole.track_ids)
    np.testing.assert_allclose(merged.vectors, whole.vectors, atol=1e-6)


def test_a_stale_index_is_detected_with_a_rebuild_hint(trained: dict, tmp_path: Path) -> None:
    home = tmp_path / "home"
    shutil.copytree(trained["home"], home)
    sidecar = home / "index" / "index.json"
    manifest = json.loads(sidecar.read_text())
    manifest["model_fingerprint"] = "0" * 16
    sidecar.write_text(json.dumps(manifest))
    result = run(
        "recommend",
        str(trained["tracks"][0].path),
        "--home",
        str(home),
        "--config",
        str(_config_with(tmp_path, "[index]\nexact_below = 0\n")),
    )
    assert result.exit_code == EXIT_NOT_READY
    assert "musimilar index" in result.stderr
    rebuilt = run("index", "--home", str(home))
    assert rebuilt.exit_code == 0, rebuilt.output
    again = run(
        "recommend",
        str(trained["tracks"][0].path),
        "--home",
        str(home),
        "--format",
        "json",
        "--config",
        str(_config_with(tmp_path, "[index]\nexact_below = 0\n")),
    )
    assert again.exit_code == 0, again.output


def test_index_check_reports_recall(trained: dict) -> None:
    result = run("index", "--home", str(trained["home"]), "--check", "--format", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["recall_at_10"] >= 0.95


def test_info_reports_every_part_up_to_date(trained: dict) -> None:
    result = run("info", "--home", str(trained["home"]), "--format", "json")
    assert result.exit_code == 0, result.output
    status = json.loads(result.stdout)
    assert status["tracks"]["ok"] == len(trained["tracks"])
    assert status["embeddings"]["up_to_date"] and status["index"]["up_to_date"]


def _config_with(tmp_path: Path, extra: str) -> Path:
    path = tmp_path / "settings.toml"
    path.write_text(TINY_CONFIG + extra)
    return path

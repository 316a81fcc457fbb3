"""`musimilar evaluate`, `classify`, `labels import`, `convert --labels` and `train --head` through the CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from typer.testing import CliRunner

from musimilar.catalog import Catalog
from musimilar.checkpoint import load_model
from musimilar.cli.app import app
from musimilar.errors import EXIT_ERROR, EXIT_NOT_READY, EXIT_OK, EXIT_PARTIAL, EXIT_USAGE
from musimilar.evaluate import FIGURES, LABEL_FIGURES
from musimilar.synth import write_library


def copy_home(trained_home, tmp_path: Path) -> Path:
    return Path(shutil.copytree(trained_home[0].root, tmp_path / "home"))


def style_csv(path: Path, tracks, column: str = "genre") -> Path:
    path.write_text(f"path,{column}\n" + "".join(f"{t.path},{t.style.upper()}\n" for t in tracks))
    return path


def test_evaluate_json_holds_every_figure(runner: CliRunner, trained_home) -> None:
    home = trained_home[0].root
    result = runner.invoke(app, ["evaluate", "--home", str(home), "--format", "json", "--control", "--device", "cpu"])
    assert result.exit_code == EXIT_OK, result.output
    report = json.loads(result.stdout)
    assert (report["by"], report["k"], report["tracks"], report["segment_tracks"]) == ("folder", 10, 32, 32)
    for part in ("model", "baseline", "chance"):
        assert all(isinstance(report[part][figure], float) for figure in FIGURES), part
    for part in ("model", "baseline"):
        assert all(isinstance(report["control"][part][figure], float) for figure in LABEL_FIGURES), part
    assert report["model"]["precision_at_k"] > report["baseline"]["precision_at_k"]
    assert "evaluate: 32 tracks with a 'folder' label, 4 labels (8 to 8 tracks each)" in result.stderr


def test_evaluate_table_puts_model_and_baseline_side_by_side(runner: CliRunner, trained_home) -> None:
    home = trained_home[0].root
    result = runner.invoke(app, ["evaluate", "--home", str(home), "--k", "5", "--sample", "8", "--device", "cpu"])
    assert result.exit_code == EXIT_OK, result.output
    for text in (
        "model",
        "baseline",
        "chance",
        "label precision@5",
        "mAP",
        "kNN accuracy",
        "linear probe",
        "segment top-1",
        "segment top-10",
    ):
        assert text in result.stdout
    assert "warning" not in result.stderr


def test_evaluate_warns_on_stderr_and_still_measures_segments(runner: CliRunner, trained_home) -> None:
    result = runner.invoke(
        app,
        [
            "evaluate",
            "--home",
            str(trained_home[0].root),
            "--by",
            "genre",
            "--sample",
            "8",
            "--format",
            "json",
            "--device",
            "cpu",
        ],
    )
    assert result.exit_code == EXIT_OK, result.output
    report = json.loads(result.stdout)
    assert report["model"]["precision_at_k"] is None and isinstance(report["model"]["top1"], float)
    assert "warning: no track has a 'genre' label" in result.stderr


def test_evaluate_without_a_model_is_not_ready(runner: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "home").mkdir()
    result = runner.invoke(app, ["evaluate", "--home", str(tmp_path / "home")])
    assert result.exit_code == EXIT_NOT_READY
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1


def test_evaluate_rejects_an_unknown_exclude_same(runner: CliRunner, trained_home) -> None:
    result = runner.invoke(app, ["evaluate", "--home", str(trained_home[0].root), "--exclude-same", "genre"])
    assert result.exit_code == EXIT_USAGE


def test_classify_json_and_stdin_with_a_bad_line(runner: CliRunner, trained_home, tmp_path: Path) -> None:
    home, _, tracks = trained_home
    result = runner.invoke(app, ["classify", str(tracks[0].path), "--home", str(home.root), "--format", "json"])
    assert result.exit_code == EXIT_OK, result.output
    (answer,) = json.loads(result.stdout)
    assert answer["labels"][0]["label"] == tracks[0].style and answer["method"] == "vote"
    lines = f"{tracks[8].path}\n{tmp_path / 'absent.wav'}\n\n3\n"
    result = runner.invoke(
        app, ["classify", "-", "--home", str(home.root), "--format", "json", "--top", "1"], input=lines
    )
    assert result.exit_code == EXIT_PARTIAL
    answers = json.loads(result.stdout)
    assert [len(a["labels"]) for a in answers] == [1, 0, 1]
    assert answers[0]["labels"][0]["label"] == tracks[8].style and answers[1]["error"]
    assert result.stderr.count("error: ") == 1


def test_classify_table(runner: CliRunner, trained_home) -> None:
    home, _, tracks = trained_home
    result = runner.invoke(app, ["classify", str(tracks[0].path), "--home", str(home.root)])
    assert result.exit_code == EXIT_OK, result.output
    assert "by folder (vote)" in result.stdout and tracks[0].style in result.stdout


def test_labels_import_stores_labels_that_evaluate_then_uses(runner: CliRunner, trained_home, tmp_path: Path) -> None:
    home = copy_home(trained_home, tmp_path)
    labels = style_csv(tmp_path / "labels.csv", trained_home[2])
    result = runner.invoke(app, ["labels", "import", str(labels), "--home", str(home), "--format", "json"])
    assert result.exit_code == EXIT_OK, result.output
    assert json.loads(result.stdout) == {"rows": 32, "matched": 32, "keys": ["genre"], "unmatched": []}
    result = runner.invoke(app, ["evaluate", "--home", str(home), "--sample", "4", "--format", "json"])
    assert json.loads(result.stdout)["by"] == "genre" and json.loads(result.stdout)["tracks"] == 32


def test_labels_import_exit_codes(runner: CliRunner, trained_home, tmp_path: Path) -> None:
    home = copy_home(trained_home, tmp_path)
    partly = tmp_path / "partly.csv"
    partly.write_text(f"path,genre\n{trained_home[2][0].path},x\nnot-there.wav,y\n")
    result = runner.invoke(app, ["labels", "import", str(partly), "--home", str(home)])
    assert result.exit_code == EXIT_PARTIAL
    assert "1 of 2 rows" in result.stderr and "not-there.wav" in result.stderr
    bad = tmp_path / "bad.csv"
    bad.write_text("path,genre\na.wav,x,y\n")
    result = runner.invoke(app, ["labels", "import", str(bad), "--home", str(home)])
    assert result.exit_code == EXIT_ERROR
    assert result.stderr == f"error: {bad}: line 2: expected 2 fields (path,genre), got 3\n"


def test_convert_with_labels_stores_them(runner: CliRunner, trained_home, tmp_path: Path) -> None:
    _, library, tracks = trained_home
    techno = [t for t in tracks if t.style == "techno"]
    labels = style_csv(tmp_path / "labels.csv", techno[:3], column="artist")
    home = tmp_path / "home"
    result = runner.invoke(
        app, ["convert", str(library / "techno"), "--home", str(home), "--labels", str(labels), "--workers", "1"]
    )
    assert result.exit_code == EXIT_OK, result.output
    assert "labels: 3 of 3 rows" in result.stderr
    with Catalog(home / "catalog.sqlite") as catalog:
        stored = {Path(t.path): t.labels.get("artist") for t in catalog.tracks()}
    assert stored == {t.path: "TECHNO" if t in techno[:3] else None for t in techno}


def test_convert_checks_the_label_file_first(runner: CliRunner, trained_home, tmp_path: Path) -> None:
    bad = tmp_path / "labels.csv"
    bad.write_text("genre,path\n")
    result = runner.invoke(
        app, ["convert", str(trained_home[1]), "--home", str(tmp_path / "home"), "--labels", str(bad)]
    )
    assert result.exit_code == EXIT_ERROR and "line 1: the header's first column must be 'path'" in result.stderr
    assert not (tmp_path / "home" / "catalog.sqlite").exists()


def test_train_with_a_head_stores_it_in_the_new_model(runner: CliRunner, tmp_path: Path) -> None:
    library = tmp_path / "music"
    write_library(library, styles=2, per_style=3, seconds=5.0)
    config = tmp_path / "musimilar.toml"
    config.write_text(
        "[train]\nepochs = 1\nbatch_size = 6\ncrops_per_track = 1\nval_fraction = 0.0\n"
        'device = "cpu"\n[embed]\ncrops = 2\ncrop_seconds = 2.0\ndevice = "cpu"\n'
    )
    home = tmp_path / "home"
    result = runner.invoke(
        app,
        [
            "train",
            str(library),
            "--home",
            str(home),
            "--config",
            str(config),
            "--head",
            "folder",
            "--workers",
            "1",
            "--format",
            "json",
        ],
    )
    assert result.exit_code == EXIT_OK, result.output
    summary = json.loads(result.stdout)
    model = load_model(home / "models" / "current.pt")
    assert summary["head"]["fingerprint"] == summary["train"]["fingerprint"] == model.fingerprint
    assert model.heads["folder"]["labels"] == ["piano-ballad", "techno"]
    assert "head: a 'folder' classifier over 2 labels, fit on 6 tracks" in result.stderr


def test_train_head_needs_the_embedding_step(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(app, ["train", "--home", str(tmp_path / "home"), "--head", "genre", "--no-index"])
    assert result.exit_code == EXIT_USAGE
    assert "--head needs the library embedded" in result.output


def test_labels_head_fits_a_head_the_vote_can_be_preferred_to(runner: CliRunner, trained_home, tmp_path: Path) -> None:
    home = copy_home(trained_home, tmp_path)
    labels = style_csv(tmp_path / "labels.csv", trained_home[2])
    assert runner.invoke(app, ["labels", "import", str(labels), "--home", str(home)]).exit_code == EXIT_OK
    result = runner.invoke(app, ["labels", "head", "genre", "--home", str(home), "--format", "json"])
    assert result.exit_code == EXIT_OK, result.output
    assert json.loads(result.stdout)["labels"] == 4
    query = str(trained_home[2][0].path)
    by_head = runner.invoke(app, ["classify", query, "--home", str(home), "--format", "json"])
    by_vote = runner.invoke(app, ["classify", query, "--home", str(home), "--format", "json", "--vote"])
    assert [json.loads(r.stdout)[0]["method"] for r in (by_head, by_vote)] == ["head", "vote"]
    assert json.loads(by_head.stdout)[0]["labels"][0]["label"] == trained_home[2][0].style.upper()

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from musimilar import __version__
from musimilar.cli.app import app
from musimilar.errors import EXIT_BUSY, EXIT_OK, EXIT_PARTIAL, EXIT_USAGE
from musimilar.home import Home
from musimilar.settings import Settings

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

STARTUP_SECONDS = 5.0  # generous: a loaded 2-core machine; without torch it takes a fraction of a second

# Runs --help and --version in-process and says which heavy modules they imported.
IMPORTS_AFTER_HELP = """
import sys
from typer.testing import CliRunner
from musimilar.cli.app import app

runner = CliRunner()
codes = [runner.invoke(app, arguments).exit_code for arguments in (["--help"], ["--version"], ["convert", "--help"])]
print(codes, "torch" in sys.modules, "torchaudio" in sys.modules)
"""


def small_folder(synth_library, tmp_path: Path, count: int = 3) -> Path:
    """A folder with copies of the first `count` tracks of the synth library."""
    folder = tmp_path / "music"
    folder.mkdir()
    for track in synth_library[1][:count]:
        shutil.copy(track.path, folder / track.path.name)
    return folder


def test_version_and_help_do_not_import_torch() -> None:
    result = subprocess.run([sys.executable, "-c", IMPORTS_AFTER_HELP], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["[0,", "0,", "0]", "False", "False"]


def test_version_and_help_are_fast() -> None:
    for arguments in (["--version"], ["--help"]):
        started = time.monotonic()
        result = subprocess.run(
            [sys.executable, "-m", "musimilar", *arguments], capture_output=True, text=True, timeout=120
        )
        elapsed = time.monotonic() - started
        assert result.returncode == 0, result.stderr
        assert elapsed < STARTUP_SECONDS, f"musimilar {' '.join(arguments)} took {elapsed:.1f} s"
    assert result.stdout and "convert" in result.stdout


def test_version(runner: CliRunner) -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.stdout.strip() == f"musimilar {__version__}"


def test_convert_json_report(runner: CliRunner, synth_library, tmp_path: Path) -> None:
    folder = small_folder(synth_library, tmp_path)
    home = tmp_path / "home"

    result = runner.invoke(app, ["convert", str(folder), "--home", str(home), "--format", "json", "--workers", "1"])

    assert result.exit_code == EXIT_OK, result.output
    report = json.loads(result.stdout)  # stdout holds the JSON alone; messages went to stderr
    assert (report["scanned"], report["new"], report["converted"], report["failed"]) == (3, 3, 3, [])
    assert report["cache_bytes"] > 0
    assert "3 converted, 0 failed" in result.stderr

    again = runner.invoke(app, ["convert", str(folder), "--home", str(home), "--format", "json", "--workers", "1"])
    assert again.exit_code == EXIT_OK
    assert (json.loads(again.stdout)["converted"], json.loads(again.stdout)["unchanged"]) == (0, 3)


def test_convert_with_the_default_workers(runner: CliRunner, synth_library, tmp_path: Path) -> None:
    folder = small_folder(synth_library, tmp_path, count=4)
    result = runner.invoke(app, ["convert", str(folder), "--home", str(tmp_path / "home"), "--format", "json"])
    assert result.exit_code == EXIT_OK, result.output
    assert json.loads(result.stdout)["converted"] == 4


def test_convert_table_output_keeps_stdout_empty(runner: CliRunner, synth_library, tmp_path: Path) -> None:
    folder = small_folder(synth_library, tmp_path, count=1)
    result = runner.invoke(app, ["convert", str(folder), "--home", str(tmp_path / "home"), "--workers", "1"])
    assert result.exit_code == EXIT_OK
    assert result.stdout == ""
    assert "1 converted" in result.stderr


def test_failed_files_give_exit_code_3(runner: CliRunner, bad_files: dict[str, Path], tmp_path: Path) -> None:
    home = tmp_path / "home"
    result = runner.invoke(
        app, ["convert", str(bad_files["directory"]), "--home", str(home), "--format", "json", "--workers", "1"]
    )

    assert result.exit_code == EXIT_PARTIAL, result.output
    report = json.loads(result.stdout)
    assert report["converted"] == 1
    assert {Path(item["path"]).name for item in report["failed"]} == {"truncated.mp3", "empty.wav", "x.mp3"}
    assert all(item["error"] for item in report["failed"])
    assert result.stderr.count("  failed: ") == 3
    assert "Traceback" not in result.output


def test_paths_from_stdin(runner: CliRunner, synth_library, tmp_path: Path) -> None:
    chosen = [track.path for track in synth_library[1][:2]]
    result = runner.invoke(
        app,
        ["convert", "-", "--home", str(tmp_path / "home"), "--format", "json", "--workers", "1"],
        input="".join(f"{path}\n" for path in chosen) + "\n",
    )
    assert result.exit_code == EXIT_OK, result.output
    assert (json.loads(result.stdout)["scanned"], json.loads(result.stdout)["converted"]) == (2, 2)


def test_convert_without_sources_is_a_usage_error(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(app, ["convert", "--home", str(tmp_path / "home")])
    assert result.exit_code == EXIT_USAGE


def test_convert_of_a_missing_folder_is_one_line(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(app, ["convert", str(tmp_path / "absent"), "--home", str(tmp_path / "home")])
    assert result.exit_code == 1
    assert result.stderr.strip() == f"error: {tmp_path / 'absent'}: no such file or folder"


def test_convert_while_the_home_is_busy(runner: CliRunner, synth_library, tmp_path: Path) -> None:
    folder = small_folder(synth_library, tmp_path, count=1)
    home = Home.open(tmp_path / "home")
    with home.exclusive("train"):
        result = runner.invoke(app, ["convert", str(folder), "--home", str(home.root)])
    assert result.exit_code == EXIT_BUSY
    assert "busy" in result.stderr and "train" in result.stderr


def test_config_show_prints_the_effective_settings_as_toml(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "musimilar.toml").write_text("[train]\nepochs = 7\n[mel]\nn_mels = 96\n")
    monkeypatch.setenv("MUSIMILAR_MEL_N_MELS", "64")

    result = runner.invoke(app, ["config", "show", "--home", str(tmp_path)])

    assert result.exit_code == EXIT_OK, result.output
    shown = Settings.model_validate(tomllib.loads(result.stdout))
    assert (shown.train.epochs, shown.mel.n_mels) == (7, 64)

    as_json = runner.invoke(app, ["config", "show", "--home", str(tmp_path), "--format", "json"])
    assert Settings.model_validate(json.loads(as_json.stdout)) == shown


def test_bad_config_is_one_line_and_exit_code_2(runner: CliRunner, synth_library, tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[train]\nepoch = 3\n")
    folder = small_folder(synth_library, tmp_path, count=1)

    for arguments in (
        ["config", "show", "--config", str(bad)],
        ["convert", str(folder), "--home", str(tmp_path / "home"), "--config", str(bad)],
    ):
        result = runner.invoke(app, arguments)
        assert result.exit_code == EXIT_USAGE, arguments
        assert result.stderr == f"error: {bad}: train.epoch: unknown key\n"
        assert result.stdout == ""


def test_bad_config_prints_no_traceback_from_the_real_entry_point(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[mel]\nn_mels = "many"\n')
    result = subprocess.run(
        [sys.executable, "-m", "musimilar", "config", "show", "--config", str(bad)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == EXIT_USAGE
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert result.stderr.startswith(f"error: {bad}: mel.n_mels: ")


def test_info_on_a_converted_home(runner: CliRunner, synth_library, tmp_path: Path) -> None:
    pytest.importorskip("musimilar.status", reason="`musimilar info` needs musimilar/status.py, not written yet")
    folder = small_folder(synth_library, tmp_path)
    home = tmp_path / "home"
    assert runner.invoke(app, ["convert", str(folder), "--home", str(home), "--workers", "1"]).exit_code == EXIT_OK

    table = runner.invoke(app, ["info", "--home", str(home)])
    assert table.exit_code == EXIT_OK, table.output
    assert str(home.resolve()) in " ".join(table.stdout.split())

    as_json = runner.invoke(app, ["info", "--home", str(home), "--format", "json"])
    assert as_json.exit_code == EXIT_OK, as_json.output
    assert json.loads(as_json.stdout)["tracks"]["ok"] == 3


def test_info_without_a_home_is_an_error(runner: CliRunner, tmp_path: Path) -> None:
    pytest.importorskip("musimilar.status", reason="`musimilar info` needs musimilar/status.py, not written yet")
    result = runner.invoke(app, ["info", "--home", str(tmp_path / "absent")])
    assert result.exit_code == 1
    assert "no library home here" in result.stderr

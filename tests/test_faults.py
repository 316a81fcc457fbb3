"""Faults a real home meets: a read-only home, a full disk, silence, shard jobs that convert, kill -9 mid-job."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from musimilar import cache
from musimilar.catalog import Catalog
from musimilar.cli.app import app
from musimilar.embeddings import load_embeddings
from musimilar.errors import EXIT_BUSY, EXIT_NO_SPACE, EXIT_OK, EXIT_PARTIAL, EXIT_READ_ONLY
from musimilar.home import Home
from musimilar.synth import write_audio

# Runs a job in a child process that stops at a marked point and waits there to be killed.
KILLED_JOB = """
import sys, time
from pathlib import Path
from musimilar.home import Home

home, marker, job = Home(Path(sys.argv[1])), Path(sys.argv[2]), sys.argv[3]

def mark_and_wait(*args, **kwargs):
    marker.touch()
    time.sleep(600)

if job == "embed":
    from musimilar import embed
    save = embed.save_embeddings

    def save_then_wait(directory, table):
        save(directory, table)
        mark_and_wait()  # killed after the first batch is stored

    embed.SAVE_EVERY_SECONDS = 0.0
    embed.save_embeddings = save_then_wait
    embed.embed_library(home, device_name="cpu")
else:
    from musimilar import index
    from musimilar.embeddings import load_embeddings

    class Killed(index.AnnoyIndex):
        build = mark_and_wait  # the kill lands while the forest is being built

    index.AnnoyIndex = Killed
    index.build_index(load_embeddings(home.embeddings_dir), home.index_dir, 10)
"""


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def home_copy(trained_home, tmp_path: Path) -> Home:
    """A copy of the trained home that a test may change."""
    home, _, _ = trained_home
    shutil.copytree(home.root, tmp_path / "home")
    return Home(tmp_path / "home")


def invoke(runner: CliRunner, *arguments: str):  # noqa: ANN201
    return runner.invoke(app, [str(argument) for argument in arguments])


# ---- a read-only home


@contextlib.contextmanager
def read_only_view(source: Path, mount_point: Path) -> Iterator[Path]:
    """`source` seen read-only: a read-only bind mount as root, else the permission bits; skips when neither."""
    mount_point.mkdir()
    if os.geteuid() != 0:
        shutil.copytree(source, mount_point, dirs_exist_ok=True)
        for path in [mount_point, *mount_point.rglob("*")]:
            path.chmod(path.stat().st_mode & ~0o222)
        yield mount_point
        return
    mounted = subprocess.run(["mount", "--bind", "-o", "ro", str(source), str(mount_point)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot make a read-only mount here: {mounted.stderr.decode().strip()}")
    try:
        if os.access(mount_point, os.W_OK):  # an old mount(8) ignores ro on the first bind
            subprocess.run(["mount", "-o", "remount,ro,bind", str(mount_point)], check=True)
        yield mount_point
    finally:
        unmount(mount_point)


def unmount(mount_point: Path) -> None:
    """Unmount; lazily when this process still maps a file there (the in-process commands' embeddings and index)."""
    if subprocess.run(["umount", str(mount_point)], capture_output=True).returncode != 0:
        subprocess.run(["umount", "--lazy", str(mount_point)], check=True)


def test_read_only_home_reads_and_refuses_writes(home_copy: Home, trained_home, tmp_path: Path, runner) -> None:
    _, library, _ = trained_home
    with read_only_view(home_copy.root, tmp_path / "read-only") as root:
        info = invoke(runner, "info", "--home", root, "--format", "json")
        assert info.exit_code == EXIT_OK, info.output
        assert json.loads(info.stdout)["tracks"]["ok"] == 32

        recommended = invoke(runner, "recommend", "1", "--home", root, "--format", "json", "-k", "3")
        assert recommended.exit_code == EXIT_OK, recommended.output
        assert len(json.loads(recommended.stdout)) == 3

        evaluated = invoke(runner, "evaluate", "--home", root, "--by", "folder", "--format", "json")
        assert evaluated.exit_code == EXIT_OK, evaluated.output

        for command in (["convert", library], ["index"], ["embed"]):
            refused = invoke(runner, *command, "--home", root)
            assert refused.exit_code == EXIT_READ_ONLY, refused.output
            assert refused.stderr.count("\n") == 1 and "Traceback" not in refused.output
            assert f"{root}: home is read-only" in refused.stderr


# ---- a full disk


def no_space(*args: object, **kwargs: object) -> None:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_full_disk_while_converting_keeps_the_work(synth_library, tmp_path: Path, runner, monkeypatch) -> None:
    directory, tracks = synth_library
    home = tmp_path / "home"
    syncs = {"count": 0}
    real_sync = cache.ShardWriter.sync

    def sync_until_full(writer: cache.ShardWriter) -> None:
        syncs["count"] += 1
        if syncs["count"] > 2:
            no_space()
        real_sync(writer)

    monkeypatch.setattr("musimilar.convert.COMMIT_EVERY_SECONDS", 0.0)
    monkeypatch.setattr(cache.ShardWriter, "sync", sync_until_full)
    full = invoke(runner, "convert", directory, "--home", home, "--workers", "1")

    assert full.exit_code == EXIT_NO_SPACE, full.output
    assert full.stderr.startswith(f"error: {home}: no space left on the device (")
    assert "MiB needed" in full.stderr or "KiB needed" in full.stderr
    assert "Traceback" not in full.output
    with Catalog(home / "catalog.sqlite") as catalog:
        kept = catalog.status_counts()
    assert 0 < kept["ok"] < len(tracks) and kept["ok"] + kept["pending"] == len(tracks)

    monkeypatch.setattr(cache.ShardWriter, "sync", real_sync)  # space freed
    again = invoke(runner, "convert", directory, "--home", home, "--format", "json")
    assert again.exit_code == EXIT_OK, again.output
    assert json.loads(again.stdout)["converted"] == len(tracks) - kept["ok"]
    clean = invoke(runner, "convert", directory, "--home", tmp_path / "clean", "--workers", "1")
    assert clean.exit_code == EXIT_OK
    assert cached(Home(home)) == cached(Home(tmp_path / "clean"))


def cached(home: Home) -> dict[str, bytes]:
    """path -> the bytes of its cached log-mel."""
    from musimilar.settings import Settings

    settings = Settings()
    reader = cache.CacheReader(cache.cache_directory(home, settings.audio, settings.mel), settings.mel.n_mels)
    with Catalog(home.catalog_path) as catalog:
        paths = {track.id: track.path for track in catalog.tracks()}
        return {paths[i]: reader.read(placement).tobytes() for i, placement in catalog.placements().items()}


@pytest.mark.parametrize("command", ["embed", "index"])
def test_full_disk_while_writing_embeddings_or_index(home_copy: Home, runner, monkeypatch, command: str) -> None:
    shutil.rmtree(home_copy.embeddings_dir if command == "embed" else home_copy.index_dir)
    monkeypatch.setattr(os, "fsync", no_space)
    full = invoke(runner, command, "--home", home_copy.root)
    assert full.exit_code == EXIT_NO_SPACE, full.output
    assert full.stderr.startswith(f"error: {home_copy.root}: no space left on the device (")
    assert "Traceback" not in full.output
    monkeypatch.undo()
    again = invoke(runner, command, "--home", home_copy.root)
    assert again.exit_code == EXIT_OK, again.output


def test_a_sqlite_full_disk_is_a_full_disk(tmp_path: Path) -> None:
    import sqlite3

    from musimilar.errors import DiskFullError

    home = Home.open(tmp_path / "home")
    with pytest.raises(DiskFullError, match="no space left"), home.exclusive("test"):
        raise sqlite3.OperationalError("database or disk is full")


@contextlib.contextmanager
def small_tmpfs(mount_point: Path, size: str) -> Iterator[Path]:
    mount_point.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount_point)],
                             capture_output=True)  # fmt: skip
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield mount_point
    finally:
        unmount(mount_point)


def test_a_real_full_disk(synth_library, tmp_path: Path, runner) -> None:
    directory, tracks = synth_library
    with small_tmpfs(tmp_path / "disk", "600k") as disk:
        home = disk / "home"
        full = invoke(runner, "convert", directory, "--home", home, "--workers", "1")
        assert full.exit_code == EXIT_NO_SPACE, full.output
        assert full.stderr.startswith(f"error: {home}: no space left on the device (")
        subprocess.run(["mount", "-o", "remount,size=64m", str(disk)], check=True)
        again = invoke(runner, "convert", directory, "--home", home, "--format", "json")
        assert again.exit_code == EXIT_OK, again.output
        with Catalog(home / "catalog.sqlite") as catalog:
            assert catalog.status_counts() == {"ok": len(tracks)}


# ---- silence


def test_silence_is_kept_out_of_embeddings(home_copy: Home, tmp_path: Path, runner) -> None:
    quiet = tmp_path / "quiet"
    write_audio(quiet / "silence.wav", np.zeros(5 * 22050, dtype=np.float32), 22050)
    write_audio(quiet / "hiss.flac", np.random.default_rng(1).normal(0, 1e-4, 5 * 22050).astype(np.float32), 22050)
    result = invoke(runner, "embed", quiet, "--home", home_copy.root, "--format", "json")
    assert result.exit_code == EXIT_PARTIAL, result.output
    failed = {Path(item["path"]).name: item["error"] for item in json.loads(result.stdout)["failed"]}
    assert failed == {"silence.wav": failed["silence.wav"], "hiss.flac": failed["hiss.flac"]}
    assert failed["silence.wav"].startswith("silent: digital silence")
    assert failed["hiss.flac"].startswith("silent: ")
    with Catalog(home_copy.catalog_path) as catalog:
        silent = [t.id for t in catalog.tracks("failed")]
    assert len(silent) == 2
    assert not set(silent) & set(load_embeddings(home_copy.embeddings_dir).track_ids.tolist())


# ---- shard jobs


def test_a_shard_job_converts_only_under_the_homes_lock(home_copy: Home, tmp_path: Path, runner) -> None:
    new = tmp_path / "new"
    write_audio(new / "tone.wav", 0.3 * np.sin(np.arange(5 * 22050) * 0.05).astype(np.float32), 22050)
    with home_copy.exclusive("convert"):  # another job converting
        result = invoke(runner, "embed", new, "--shard", "1/2", "--home", home_copy.root)
    assert result.exit_code == EXIT_BUSY, result.output
    assert "home is busy (convert" in result.stderr
    with Catalog(home_copy.catalog_path) as catalog:
        assert catalog.track_by_path(new.resolve() / "tone.wav") is None  # nothing written beside the other job


# ---- kill -9


def run_until_marked(home: Home, job: str, tmp_path: Path) -> None:
    marker = tmp_path / f"{job}.marker"
    run = subprocess.Popen([sys.executable, "-c", KILLED_JOB, str(home.root), str(marker), job])
    try:
        deadline = time.monotonic() + 180
        while not marker.exists():
            assert run.poll() is None, f"{job} ended before it could be killed"
            assert time.monotonic() < deadline, f"{job} did not reach the kill point"
            time.sleep(0.05)
    finally:
        run.send_signal(signal.SIGKILL)
        run.wait(timeout=30)


def test_killed_embed_reruns_to_a_clean_result(home_copy: Home, trained_home, tmp_path: Path, runner) -> None:
    clean = load_embeddings(trained_home[0].embeddings_dir, mmap=False)
    shutil.rmtree(home_copy.embeddings_dir)
    run_until_marked(home_copy, "embed", tmp_path)
    partial = load_embeddings(home_copy.embeddings_dir, mmap=False)
    assert partial is not None and 0 < len(partial) < len(clean)

    result = invoke(runner, "embed", "--home", home_copy.root, "--device", "cpu", "--format", "json")
    assert result.exit_code == EXIT_OK, result.output
    assert json.loads(result.stdout)["reused"] == len(partial)
    rerun = load_embeddings(home_copy.embeddings_dir, mmap=False)
    order, clean_order = np.argsort(rerun.track_ids), np.argsort(clean.track_ids)
    np.testing.assert_array_equal(rerun.track_ids[order], clean.track_ids[clean_order])
    np.testing.assert_allclose(rerun.vectors[order], clean.vectors[clean_order], atol=1e-5)


def test_killed_index_reruns_to_a_clean_result(home_copy: Home, trained_home, tmp_path: Path, runner) -> None:
    shutil.rmtree(home_copy.index_dir)
    run_until_marked(home_copy, "index", tmp_path)
    assert not (home_copy.index_dir / "index.json").exists()  # nothing committed

    result = invoke(runner, "index", "--home", home_copy.root, "--trees", "10")
    assert result.exit_code == EXIT_OK, result.output
    leftovers = [p.name for p in home_copy.index_dir.iterdir() if p.name.startswith(".")]
    assert leftovers == []
    clean = tmp_path / "clean-index"
    from musimilar.index import build_index, open_searcher
    from musimilar.settings import IndexSettings

    table = load_embeddings(home_copy.embeddings_dir)
    build_index(table, clean, 10)
    exact_off = IndexSettings(exact_below=0)
    rerun_searcher = open_searcher(table, home_copy.index_dir, exact_off)
    clean_searcher = open_searcher(table, clean, exact_off)
    for track_id in table.track_ids[:5]:
        vector = table.vectors[table.row_of(int(track_id))]
        assert rerun_searcher.search(vector, 5) == clean_searcher.search(vector, 5)

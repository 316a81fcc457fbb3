from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from musimilar.audio import decode
from musimilar.cache import CacheReader, cache_directory, shard_path
from musimilar.catalog import Catalog
from musimilar.convert import ConvertReport, convert
from musimilar.errors import HomeBusyError
from musimilar.home import Home
from musimilar.mel import LogMel
from musimilar.settings import AudioSettings, MelSettings, Settings
from musimilar.synth import SynthTrack

DEFAULTS = Settings()
SECONDS = 8.0  # every clip of the `synth_library` fixture
CACHE_BYTES_PER_SECOND = 128 * 2 * 22050 / 512  # n_mels float16 values per frame, 43 frames a second: 40 MB/hour

# Converts a library slowly (a pause after each file, a commit every 0.2 s) so the test can kill it mid-run.
SLOW_CONVERT = """
import sys, time
from pathlib import Path
from musimilar import convert
from musimilar.home import Home
from musimilar.settings import Settings

convert.COMMIT_EVERY_SECONDS = 0.2
convert.convert(Home.open(Path(sys.argv[1])), [Path(sys.argv[2])], Settings(), workers=1,
                progress=lambda done, total, path: time.sleep(0.1))
"""


def cached_logmels(home: Home, settings: Settings = DEFAULTS) -> dict[str, np.ndarray]:
    """path -> cached log-mel [n_mels, frames] of every converted track."""
    reader = CacheReader(cache_directory(home, settings.audio, settings.mel), settings.mel.n_mels)
    with Catalog(home.catalog_path) as catalog:
        paths = {track.id: track.path for track in catalog.tracks()}
        return {paths[track_id]: reader.read(placement) for track_id, placement in catalog.placements().items()}


def fresh_logmel(path: Path | str, settings: Settings = DEFAULTS) -> np.ndarray:
    samples, _ = decode(Path(path), settings.audio)
    with torch.inference_mode():
        return LogMel(settings.audio, settings.mel)(torch.from_numpy(samples)).numpy()


def assert_matches_fresh(cached: np.ndarray, path: Path | str, settings: Settings = DEFAULTS) -> None:
    assert np.all(np.isfinite(cached))
    np.testing.assert_allclose(cached, fresh_logmel(path, settings), rtol=2**-10, atol=1e-3)  # float16


def counts(report: ConvertReport) -> tuple[int, int, int, int, int]:
    return report.new, report.changed, report.unchanged, report.missing, report.converted


@pytest.fixture(scope="module")
def converted(
    synth_library: tuple[Path, list[SynthTrack]], tmp_path_factory: pytest.TempPathFactory
) -> tuple[Home, ConvertReport]:
    """The synth library converted once with one worker."""
    home = Home.open(tmp_path_factory.mktemp("home"))
    return home, convert(home, [synth_library[0]], DEFAULTS, workers=1)


@pytest.fixture
def small_library(synth_library: tuple[Path, list[SynthTrack]], tmp_path: Path) -> Path:
    """A copy of four tracks of the synth library (one per format) that a test may change."""
    root = tmp_path / "music"
    for track in synth_library[1][:4]:
        (root / track.style).mkdir(parents=True, exist_ok=True)
        shutil.copy2(track.path, root / track.style / track.path.name)
    return root


def touch_later(path: Path) -> None:
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))


def test_every_file_is_converted(converted: tuple[Home, ConvertReport], synth_library) -> None:
    home, report = converted
    tracks = synth_library[1]

    assert (report.scanned, report.converted, report.failed, report.cache_reset) == (len(tracks), len(tracks), [], None)
    assert counts(report)[:4] == (len(tracks), 0, 0, 0)
    assert report.audio_seconds == pytest.approx(len(tracks) * SECONDS)
    with Catalog(home.catalog_path) as catalog:
        assert catalog.status_counts() == {"ok": len(tracks)}
        by_path = {track.path: track for track in catalog.tracks()}
        placements = catalog.placements()
    for synth in tracks:
        track = by_path[str(synth.path.resolve())]
        assert track.labels["folder"] == synth.style
        assert placements[track.id].frames == 1 + round(SECONDS * DEFAULTS.audio.sample_rate) // DEFAULTS.mel.hop_length


def test_cache_holds_about_40_megabytes_per_hour(converted: tuple[Home, ConvertReport]) -> None:
    _, report = converted
    bytes_per_second = report.cache_bytes / report.audio_seconds
    assert bytes_per_second == pytest.approx(CACHE_BYTES_PER_SECOND, rel=0.01)  # one extra frame per track
    assert 39e6 < bytes_per_second * 3600 < 41e6


def test_cached_logmels_equal_a_fresh_computation(converted: tuple[Home, ConvertReport], synth_library) -> None:
    home, _ = converted
    logmels = cached_logmels(home)
    for synth in synth_library[1][:4]:  # one per format
        assert_matches_fresh(logmels[str(synth.path.resolve())], synth.path)


def test_second_run_does_no_work(converted: tuple[Home, ConvertReport], synth_library) -> None:
    home, first = converted
    report = convert(home, [synth_library[0]], DEFAULTS, workers=1)
    assert counts(report) == (0, 0, first.scanned, 0, 0)
    assert report.cache_bytes == first.cache_bytes


def test_two_workers_give_the_same_logmels(
    converted: tuple[Home, ConvertReport], synth_library, tmp_path: Path
) -> None:
    home = Home.open(tmp_path / "home")
    report = convert(home, [synth_library[0]], DEFAULTS, workers=2)

    assert report.converted == len(synth_library[1]) and not report.failed
    one, two = cached_logmels(converted[0]), cached_logmels(home)
    assert one.keys() == two.keys()
    for path in one:
        np.testing.assert_array_equal(one[path], two[path])


def test_new_changed_and_deleted_files(small_library: Path, tmp_path: Path, synth_library) -> None:
    home = Home.open(tmp_path / "home")
    assert counts(convert(home, [small_library], DEFAULTS, workers=1)) == (4, 0, 0, 0, 4)
    first, second, third, fourth = sorted(small_library.rglob("*.*"))

    added = small_library / "new" / "added.flac"
    added.parent.mkdir()
    shutil.copy(synth_library[1][5].path, added)
    report = convert(home, [small_library], DEFAULTS, workers=1)
    assert counts(report) == (1, 0, 4, 0, 1)
    assert_matches_fresh(cached_logmels(home)[str(added.resolve())], added)

    shutil.copy(synth_library[1][7].path, second)  # other music in the same format (flac)
    touch_later(second)
    report = convert(home, [small_library], DEFAULTS, workers=1)
    assert counts(report) == (0, 1, 4, 0, 1)
    assert_matches_fresh(cached_logmels(home)[str(second.resolve())], synth_library[1][7].path)

    fourth.unlink()
    report = convert(home, [small_library], DEFAULTS, workers=1)
    assert counts(report) == (0, 0, 4, 1, 0)
    with Catalog(home.catalog_path) as catalog:
        assert catalog.status_counts() == {"ok": 4, "missing": 1}
        versions = {Path(track.path).name: track.version for track in catalog.tracks()}
    assert versions == {first.name: 1, second.name: 2, third.name: 1, "added.flac": 1}
    assert str(fourth.resolve()) not in cached_logmels(home)


def test_changed_mel_settings_rebuild_the_cache(small_library: Path, tmp_path: Path) -> None:
    home = Home.open(tmp_path / "home")
    convert(home, [small_library], DEFAULTS, workers=1)
    old_cache = cache_directory(home, DEFAULTS.audio, DEFAULTS.mel)
    assert old_cache.is_dir()

    fewer_mels = Settings(mel=MelSettings(n_mels=64))
    report = convert(home, [small_library], fewer_mels, workers=1)

    assert report.cache_reset is not None and "settings changed" in report.cache_reset
    assert (report.unchanged, report.converted) == (4, 4)
    assert not old_cache.exists()
    logmels = cached_logmels(home, fewer_mels)
    assert {logmel.shape[0] for logmel in logmels.values()} == {64}
    assert_matches_fresh(next(iter(logmels.values())), next(iter(logmels)), fewer_mels)
    assert convert(home, [small_library], fewer_mels, workers=1).cache_reset is None

    capped = Settings(mel=MelSettings(n_mels=64), audio=AudioSettings(max_seconds=2.0))
    report = convert(home, [small_library], capped, workers=1)
    assert report.cache_reset is not None and report.converted == 4
    frames = {logmel.shape[1] for logmel in cached_logmels(home, capped).values()}
    assert frames == {1 + 2 * capped.audio.sample_rate // capped.mel.hop_length}


def test_bad_files_are_recorded_and_the_others_convert(bad_files: dict[str, Path], tmp_path: Path) -> None:
    home = Home.open(tmp_path / "home")
    report = convert(home, [bad_files["directory"]], DEFAULTS, workers=1)

    assert (report.scanned, report.converted) == (4, 1)
    failed = {Path(path).name: error for path, error in report.failed}
    assert failed.keys() == {"truncated.mp3", "empty.wav", "x.mp3"}
    assert failed["truncated.mp3"].startswith("truncated: decoded")
    assert failed["empty.wav"].startswith("empty: ")
    assert failed["x.mp3"].split(":")[0] in ("unsupported", "unreadable")
    unicode_path = str(bad_files["unicode_flac"].resolve())
    assert_matches_fresh(cached_logmels(home)[unicode_path], unicode_path)
    with Catalog(home.catalog_path) as catalog:
        assert sorted(catalog.failures()) == sorted(report.failed)
        assert catalog.status_counts() == {"ok": 1, "failed": 3}

    again = convert(home, [bad_files["directory"]], DEFAULTS, workers=1)  # failures are not retried until changed
    assert (again.converted, again.failed, again.previously_failed) == (0, [], 3)


def test_progress_is_reported_per_file(small_library: Path, tmp_path: Path) -> None:
    calls: list[tuple[int, int, str]] = []
    convert(
        Home.open(tmp_path / "home"),
        [small_library],
        DEFAULTS,
        workers=1,
        progress=lambda done, total, path: calls.append((done, total, path)),
    )
    assert [(done, total) for done, total, _ in calls] == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert sorted(path for _, _, path in calls) == sorted(str(p.resolve()) for p in small_library.rglob("*.*"))


def test_converting_in_process_keeps_the_callers_thread_count(small_library: Path, tmp_path: Path) -> None:
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        convert(Home.open(tmp_path / "home"), [small_library], DEFAULTS, workers=1)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_a_killed_run_resumes(synth_library, tmp_path: Path) -> None:
    directory, tracks = synth_library
    home = Home.open(tmp_path / "home")
    run = subprocess.Popen(
        [sys.executable, "-c", SLOW_CONVERT, str(home.root), str(directory)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for_first_commit(home, run)
    finally:
        run.send_signal(signal.SIGKILL)
        run.wait(timeout=30)
    with Catalog(home.catalog_path) as catalog:
        converted_before_kill = catalog.status_counts().get("ok", 0)
    assert 0 < converted_before_kill < len(tracks), "the kill should land mid-run"

    # a kill between writing log-mels and recording them leaves unrecorded bytes at the shard's end
    cache = cache_directory(home, DEFAULTS.audio, DEFAULTS.mel)
    last_shard = max(int(path.stem.split("-")[1]) for path in cache.glob("shard-*.f16"))
    with open(shard_path(cache, last_shard), "ab") as shard:
        shard.write(np.full((7, DEFAULTS.mel.n_mels), 12.5, dtype=np.float16).tobytes())

    report = convert(home, [directory], DEFAULTS, workers=1)

    assert report.converted == len(tracks) - converted_before_kill and not report.failed
    with Catalog(home.catalog_path) as catalog:
        assert catalog.status_counts() == {"ok": len(tracks)}
        placements = catalog.placements()
        paths = [track.path for track in catalog.tracks(status=None)]
    assert len(paths) == len(set(paths)) == len(tracks)  # no track registered twice
    spans = sorted((p.shard, p.offset, p.offset + p.frames) for p in placements.values())
    for (shard, _, end), (next_shard, next_start, _) in zip(spans, spans[1:]):
        assert shard != next_shard or end <= next_start  # no two tracks share cache rows
    assert sum(p.frames for p in placements.values()) * DEFAULTS.mel.n_mels * 2 == report.cache_bytes
    logmels = cached_logmels(home)
    assert all(np.all(np.isfinite(logmel)) for logmel in logmels.values())
    for synth in (tracks[0], tracks[-1]):  # converted before and after the kill
        assert_matches_fresh(logmels[str(synth.path.resolve())], synth.path)


def _wait_for_first_commit(home: Home, run: subprocess.Popen, timeout: float = 120.0) -> None:
    """Return once the catalog shows a converted track; fail if the run ends first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert run.poll() is None, "convert ended before it could be killed"
        if home.catalog_path.exists():
            try:
                with Catalog(home.catalog_path) as catalog:
                    if catalog.status_counts().get("ok", 0):
                        return
            except (sqlite3.OperationalError, HomeBusyError):
                pass  # the other process is still creating the catalog
        time.sleep(0.05)
    pytest.fail("convert committed nothing in time")

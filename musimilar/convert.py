"""`convert`: scan folders, register files in the catalog, and cache their log-mels, in parallel and incrementally."""

from __future__ import annotations

import contextlib
import multiprocessing
import sqlite3
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from musimilar import cache
from musimilar.audio import decode
from musimilar.catalog import Catalog, SyncResult, Track
from musimilar.errors import DecodeError, DiskFullError
from musimilar.home import Home, free_bytes, is_disk_full
from musimilar.scan import scan
from musimilar.settings import Settings
from musimilar.threads import capped_workers

COMMIT_EVERY_SECONDS = 1.0  # placements are committed in batches; a crash loses at most this much work

ProgressCallback = Callable[[int, int, str], None]  # (done, total, path just finished)


@dataclass
class ConvertReport:
    scanned: int = 0
    new: int = 0
    changed: int = 0
    unchanged: int = 0
    missing: int = 0
    converted: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    previously_failed: int = 0
    cue_tracks: int = 0  # tracks cut from single-file albums by their CUE sheets
    ignored: dict[str, int] = field(default_factory=dict)  # extension -> files found that are not audio
    cache_reset: str | None = None  # why the cache was rebuilt, if it was
    cache_bytes: int = 0
    audio_seconds: float = 0.0
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        """The JSON of `musimilar convert --format json`."""
        return {**asdict(self), "failed": [{"path": p, "error": e} for p, e in self.failed]}


@dataclass
class Converted:
    """What a worker returns for one track."""

    track_id: int
    path: str
    logmel: np.ndarray | None = None  # [n_mels, frames] float16
    duration: float = 0.0
    sample_rate: int = 0
    channels: int = 0
    tags: dict[str, str] = field(default_factory=dict)
    error: str | None = None


def convert(
    home: Home,
    sources: Iterable[Path],
    settings: Settings,
    workers: int | None = None,
    progress: ProgressCallback | None = None,
) -> ConvertReport:
    """Register the audio under `sources` and cache the log-mel of every new or changed track."""
    started = time.perf_counter()
    found = scan(sources)
    report = ConvertReport(
        scanned=len(found.files) + len(found.covered), cue_tracks=len(found.cue_tracks), ignored=dict(found.ignored)
    )
    with Catalog(home.catalog_path) as catalog:
        synced = catalog.sync(found.files, found.folders, found.cue_tracks)
        _count_sync(report, synced)
        report.cache_reset = _check_cache_settings(home, catalog, settings)
        pending = catalog.pending_conversion()
        _convert_pending(home, catalog, pending, settings, workers, progress, report)
        report.previously_failed = max(0, len(catalog.failures()) - len(report.failed))
    report.cache_bytes = cache.cache_size_bytes(cache.cache_directory(home, settings.audio, settings.mel))
    report.seconds = time.perf_counter() - started
    return report


def _count_sync(report: ConvertReport, synced: SyncResult) -> None:
    report.new, report.changed = synced.new, synced.changed
    report.unchanged, report.missing = synced.unchanged, synced.missing
    report.failed.extend(synced.unreadable)


def _check_cache_settings(home: Home, catalog: Catalog, settings: Settings) -> str | None:
    """Start a new cache when the preprocessing settings changed; returns why, or None."""
    from musimilar.mel import preprocessing_fingerprint

    key = preprocessing_fingerprint(settings.audio, settings.mel)
    previous = catalog.get_meta(cache.CACHE_KEY)
    if previous == key:
        return None
    catalog.reset_spectrograms()
    if previous is not None:
        cache.remove_cache(home.cache_dir / previous)
    catalog.set_meta(cache.CACHE_KEY, key)
    if previous is None:
        return None
    return "audio or mel settings changed since the last convert: the spectrogram cache is rebuilt"


def _convert_pending(
    home: Home,
    catalog: Catalog,
    pending: list[Track],
    settings: Settings,
    workers: int | None,
    progress: ProgressCallback | None,
    report: ConvertReport,
) -> None:
    if not pending:
        return
    writer = cache.ShardWriter(
        cache.cache_directory(home, settings.audio, settings.mel), settings.mel.n_mels, catalog.shard_ends()
    )
    batch: list[Converted] = []
    last_commit = time.monotonic()
    try:
        for done, result in enumerate(_run_workers(pending, settings, workers), start=1):
            batch.append(result)
            if time.monotonic() - last_commit > COMMIT_EVERY_SECONDS:
                _commit(catalog, writer, batch, report)
                batch, last_commit = [], time.monotonic()
            if progress is not None:
                progress(done, len(pending), result.path)
        _commit(catalog, writer, batch, report)
    except (OSError, sqlite3.Error) as error:
        if not is_disk_full(error):
            raise
        needed = _space_needed(settings, len(pending) - report.converted - len(report.failed), report)
        raise DiskFullError(home.root, free_bytes(home.root), needed) from None  # what was committed stays
    except BaseException:
        _commit(catalog, writer, batch, report)  # Ctrl-C or a failing worker: keep what was converted
        raise
    finally:
        with contextlib.suppress(OSError):  # a full disk fails the last flush; nothing unflushed is recorded
            writer.close()


def _space_needed(settings: Settings, remaining: int, report: ConvertReport) -> int:
    """The cache bytes the remaining tracks need: as much per track as the ones converted so far took, or (before
    any) a whole kept window each; the catalog rows are small beside it."""
    seconds = settings.audio.max_seconds
    if report.converted:
        seconds = min(seconds, report.audio_seconds / report.converted)
    return int(max(1, remaining) * seconds * cache.bytes_per_second(settings.audio, settings.mel))


def _commit(catalog: Catalog, writer: cache.ShardWriter, batch: list[Converted], report: ConvertReport) -> None:
    """Append the batch's log-mels, make them durable, then record them (the order that makes a crash safe)."""
    placements = [(item, writer.append(item.track_id, item.logmel)) for item in batch if item.logmel is not None]
    writer.sync()
    with catalog.transaction() as db:
        for item, placement in placements:
            catalog.record_converted(db, placement, item.duration, item.sample_rate, item.channels, item.tags)
            report.converted += 1
            report.audio_seconds += item.duration
        for item in batch:
            if item.error is not None:
                catalog.record_failed(db, item.track_id, item.error)
                report.failed.append((item.path, item.error))


def _run_workers(pending: list[Track], settings: Settings, workers: int | None) -> Iterator[Converted]:
    jobs = [Job(track.id, track.path, str(track.audio_path), track.span) for track in pending]
    workers = min(capped_workers(workers), len(jobs))
    if workers <= 1:
        import torch

        threads = torch.get_num_threads()
        _start_worker(settings)
        try:
            yield from (_convert_one(job) for job in jobs)
        finally:
            torch.set_num_threads(threads)  # the caller (train, recommend) goes on with its own thread count
        return
    # fork shares the already-imported modules; torch has run nothing yet in this process, so it is safe
    context = multiprocessing.get_context("fork" if sys.platform.startswith("linux") else "spawn")
    with context.Pool(workers, initializer=_start_worker, initargs=(settings,)) as pool:
        yield from pool.imap_unordered(_convert_one, jobs, chunksize=1)


_worker_state: dict[str, object] = {}


def _start_worker(settings: Settings) -> None:
    import torch

    from musimilar.mel import LogMel

    torch.set_num_threads(1)  # one process per core
    _worker_state["settings"] = settings
    _worker_state["logmel"] = LogMel(settings.audio, settings.mel)


class Job(NamedTuple):
    """One track to convert: its catalog key, the file to decode and (a CUE sheet track) its span."""

    track_id: int
    path: str
    audio_path: str
    span: tuple[float, float | None] | None


def _convert_one(job: Job) -> Converted:
    import torch

    from musimilar.tags import read_tags

    settings: Settings = _worker_state["settings"]  # type: ignore[assignment]
    try:
        samples, info = decode(Path(job.audio_path), settings.audio, span=job.span)
    except DecodeError as error:
        return Converted(job.track_id, job.path, error=f"{error.kind}: {error.cause}")
    with torch.inference_mode():
        logmel = _worker_state["logmel"](torch.from_numpy(samples))  # type: ignore[operator]
    start, end = job.span or (0.0, None)
    return Converted(
        job.track_id,
        job.path,
        logmel=logmel.numpy().astype(np.float16),
        duration=min(info.duration, end or info.duration) - start,
        sample_rate=info.sample_rate,
        channels=info.channels,
        tags=read_tags(Path(job.audio_path)),
    )

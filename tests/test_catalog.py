from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from musimilar.catalog import FINGERPRINT_SPAN, Catalog, Placement, content_fingerprint

# Prints the catalog's status counts as another process sees them.
READER = """
import sys
from pathlib import Path
from musimilar.catalog import Catalog

with Catalog(Path(sys.argv[1])) as catalog:
    print(sorted(catalog.status_counts().items()), len(catalog.tracks(status=None)), catalog.get_meta("k"))
"""


def write(path: Path, data: bytes, mtime_ns: int | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    if mtime_ns is not None:
        os.utime(path, ns=(mtime_ns, mtime_ns))
    return path


def touch_later(path: Path) -> None:
    """Move the file's mtime on, whatever the filesystem's timestamp resolution."""
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))


@pytest.fixture
def library(tmp_path: Path) -> Path:
    root = tmp_path / "music"
    for folder, names in {"jazz": ["a.mp3", "b.ogg"], "rock": ["c.flac"]}.items():
        for name in names:
            write(root / folder / name, f"{folder}/{name}".encode() * 100)
    return root


@pytest.fixture
def catalog(tmp_path: Path):
    with Catalog(tmp_path / "catalog.sqlite") as opened:
        yield opened


def files(root: Path) -> list[Path]:
    return sorted(path for path in root.rglob("*") if path.is_file())


def test_sync_registers_new_files_with_their_folder_as_label(catalog: Catalog, library: Path) -> None:
    result = catalog.sync(files(library), [library])

    assert (result.new, result.changed, result.unchanged, result.missing) == (3, 0, 0, 0)
    tracks = catalog.tracks(status="pending")
    assert [Path(t.path).name for t in tracks] == ["a.mp3", "b.ogg", "c.flac"]
    assert [t.labels for t in tracks] == [{"folder": "jazz"}, {"folder": "jazz"}, {"folder": "rock"}]
    assert all(t.version == 1 for t in tracks)
    assert [t.id for t in catalog.pending_conversion()] == [t.id for t in tracks]


def test_sync_again_finds_everything_unchanged(catalog: Catalog, library: Path) -> None:
    catalog.sync(files(library), [library])
    result = catalog.sync(files(library), [library])
    assert (result.new, result.changed, result.unchanged, result.missing) == (0, 0, 3, 0)


def test_touched_but_identical_file_is_unchanged(catalog: Catalog, library: Path) -> None:
    catalog.sync(files(library), [library])
    path = library / "jazz" / "a.mp3"
    touch_later(path)

    result = catalog.sync(files(library), [library])

    assert (result.changed, result.unchanged) == (0, 3)
    track = catalog.track_by_path(path)
    assert track is not None and track.version == 1 and track.mtime_ns == path.stat().st_mtime_ns


def test_changed_content_bumps_the_version_and_drops_the_cached_logmel(catalog: Catalog, library: Path) -> None:
    catalog.sync(files(library), [library])
    path = library / "jazz" / "a.mp3"
    track = catalog.track_by_path(path)
    assert track is not None
    with catalog.transaction() as db:
        catalog.record_converted(db, Placement(track.id, 0, 0, 10), 3.0, 44100, 2, {})
    old_fingerprint = track.fingerprint
    write(path, path.read_bytes().replace(b"jazz", b"JAZZ"))  # same size
    touch_later(path)

    result = catalog.sync(files(library), [library])

    assert (result.changed, result.unchanged) == (1, 2)
    changed = catalog.track_by_path(path)
    assert changed is not None
    assert (changed.id, changed.version, changed.status) == (track.id, 2, "pending")
    assert changed.fingerprint != old_fingerprint
    assert catalog.placements() == {}
    assert catalog.shard_ends() == {}


def test_deleted_file_becomes_missing_and_comes_back(catalog: Catalog, library: Path) -> None:
    catalog.sync(files(library), [library])
    path = library / "rock" / "c.flac"
    data = path.read_bytes()
    stat = path.stat()
    path.unlink()

    result = catalog.sync(files(library), [library])

    assert (result.missing, result.unchanged) == (1, 2)
    assert catalog.status_counts() == {"pending": 2, "missing": 1}
    assert catalog.sync(files(library), [library]).missing == 0  # counted once

    write(path, data, mtime_ns=stat.st_mtime_ns)
    result = catalog.sync(files(library), [library])
    assert (result.changed, result.missing) == (1, 0)
    assert catalog.status_counts() == {"pending": 3}


def test_files_outside_the_scanned_roots_are_not_marked_missing(catalog: Catalog, library: Path) -> None:
    catalog.sync(files(library), [library])
    jazz = library / "jazz"
    result = catalog.sync(files(jazz), [jazz])
    assert (result.unchanged, result.missing) == (2, 0)
    # a sibling folder whose name starts like a scanned one is not under it
    result = catalog.sync([], [library / "ja"])
    assert result.missing == 0


def test_unreadable_path_is_reported_not_raised(catalog: Catalog, library: Path) -> None:
    result = catalog.sync([library / "jazz" / "gone.mp3"], [])
    assert result.unreadable and result.unreadable[0][0].endswith("gone.mp3")
    assert catalog.tracks(status=None) == []


def test_fingerprint_reads_content_not_names(tmp_path: Path) -> None:
    size = 4 * FINGERPRINT_SPAN
    data = bytes(range(256)) * (size // 256)
    first = write(tmp_path / "a.bin", data)
    second = write(tmp_path / "b.bin", data)
    assert content_fingerprint(first, size) == content_fingerprint(second, size)

    for position in (0, size // 2, size - 1):  # start, middle and end spans
        changed = bytearray(data)
        changed[position] ^= 0xFF
        write(second, bytes(changed))
        assert content_fingerprint(second, size) != content_fingerprint(first, size), position

    small = write(tmp_path / "small.bin", b"abc")
    assert content_fingerprint(small, 3) != content_fingerprint(write(tmp_path / "other.bin", b"abd"), 3)


def test_converted_and_failed_tracks(catalog: Catalog, library: Path) -> None:
    catalog.sync(files(library), [library])
    a, b, c = catalog.tracks(status="pending")
    with catalog.transaction() as db:
        catalog.record_converted(db, Placement(a.id, 0, 0, 100), 12.5, 44100, 2, {"genre": "bebop", "folder": "x"})
        catalog.record_converted(db, Placement(b.id, 0, 100, 50), 6.0, 22050, 1, {})
        catalog.record_failed(db, c.id, "unreadable: truncated")

    assert catalog.status_counts() == {"ok": 2, "failed": 1}
    converted = catalog.track(a.id)
    assert converted is not None
    assert (converted.duration, converted.sample_rate, converted.channels) == (12.5, 44100, 2)
    assert converted.labels == {"genre": "bebop", "folder": "jazz"}  # the folder label stays the folder
    assert catalog.placements() == {a.id: Placement(a.id, 0, 0, 100), b.id: Placement(b.id, 0, 100, 50)}
    assert catalog.shard_ends() == {0: 150}
    assert catalog.failures() == [(c.path, "unreadable: truncated")]
    assert catalog.pending_conversion() == []

    catalog.reset_spectrograms()  # after a settings change every ok track is converted again
    assert [t.id for t in catalog.pending_conversion()] == [a.id, b.id]


def test_set_labels_merges(catalog: Catalog, library: Path) -> None:
    catalog.sync(files(library), [library])
    track = catalog.tracks(status="pending")[0]
    catalog.set_labels({track.id: {"genre": "swing"}, 10_000: {"genre": "none"}})
    assert catalog.track(track.id).labels == {"folder": "jazz", "genre": "swing"}  # type: ignore[union-attr]


def test_transaction_rolls_back_on_error(catalog: Catalog) -> None:
    catalog.set_meta("k", "before")
    with pytest.raises(RuntimeError):
        with catalog.transaction() as db:
            db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('k', 'during')")
            db.execute(
                "INSERT INTO tracks (path, size, mtime_ns, fingerprint, added_at, updated_at)"
                " VALUES ('x.mp3', 1, 1, 'f', 0, 0)"
            )
            raise RuntimeError("interrupted")
    assert catalog.get_meta("k") == "before"
    assert catalog.tracks(status=None) == []
    catalog.set_meta("k", "after")  # the connection is usable again
    assert catalog.get_meta("k") == "after"


def test_sync_is_one_transaction(catalog: Catalog, library: Path) -> None:
    paths = files(library)

    def failing_paths():
        yield paths[0]
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        catalog.sync(failing_paths(), [library])
    assert catalog.tracks(status=None) == []


def test_wal_lets_another_process_read_while_one_writes(catalog: Catalog, library: Path) -> None:
    assert catalog.connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    catalog.sync(files(library), [library])
    catalog.set_meta("k", "committed")

    with catalog.transaction() as db:  # the writer holds its write lock while the reader runs
        db.execute("UPDATE tracks SET status = 'ok'")
        db.execute("UPDATE meta SET value = 'uncommitted' WHERE key = 'k'")
        started = time.monotonic()
        seen = subprocess.run(
            [sys.executable, "-c", READER, str(catalog.path)], capture_output=True, text=True, timeout=60, check=True
        ).stdout.strip()
        assert time.monotonic() - started < 20  # not waiting for the busy timeout
        assert seen == "[('pending', 3)] 3 committed"

    with Catalog(catalog.path) as second:  # a second connection sees the commit
        assert second.status_counts() == {"ok": 3}
        assert second.get_meta("k") == "uncommitted"


def test_a_second_writer_waits_for_the_first(catalog: Catalog) -> None:
    with Catalog(catalog.path) as second:
        second.connection.execute("PRAGMA busy_timeout = 50")
        with catalog.transaction():
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                second.set_meta("k", "v")
        second.set_meta("k", "v")
        assert catalog.get_meta("k") == "v"


def test_twins_are_the_copies_of_one_file(catalog: Catalog, library: Path) -> None:
    copy = write(library / "elsewhere" / "a-again.mp3", (library / "jazz" / "a.mp3").read_bytes())
    catalog.sync(files(library), [library])
    ids = {Path(track.path).name: track.id for track in catalog.tracks(status=None)}
    twins = catalog.twins()
    assert set(twins) == {ids["a.mp3"], ids[copy.name]}
    assert twins[ids["a.mp3"]] == twins[ids[copy.name]] == {ids["a.mp3"], ids[copy.name]}


def test_a_read_only_catalog_of_an_older_version_reads_its_tracks(tmp_path: Path, library: Path, monkeypatch) -> None:
    path = tmp_path / "old.sqlite"
    with Catalog(path) as catalog:
        catalog.sync(files(library), [library])
    with sqlite3.connect(path) as db:  # as a version before CUE sheets wrote it
        for column in ("file", "span_start", "span_end"):
            db.execute(f"ALTER TABLE tracks DROP COLUMN {column}")
    monkeypatch.setattr("musimilar.catalog._writable", lambda path: False)
    with Catalog(path) as catalog:
        assert catalog.read_only
        tracks = catalog.tracks(status=None)
        assert len(tracks) == 3 and all(track.file is None and track.span is None for track in tracks)
        assert catalog.track(tracks[0].id) == tracks[0]
        assert catalog.tracks_by_id([tracks[1].id]) == {tracks[1].id: tracks[1]}

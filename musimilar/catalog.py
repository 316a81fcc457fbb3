"""The catalog: an SQLite database with one row per audio file of the library.

WAL mode lets readers (recommend, info) work while one writer converts; writes are transactions, and jobs that
write take the home's lock (`Home.exclusive`) so two writers never interleave.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, fields
from pathlib import Path

from musimilar.cue import CueTrack
from musimilar.errors import HomeBusyError
from musimilar.registration import (  # noqa: F401  (re-exported: part of the catalog's interface)
    FINGERPRINT_SPAN,
    Entry,
    SyncResult,
    content_fingerprint,
    mark_missing_under,
    register,
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS tracks (
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL UNIQUE,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    fingerprint TEXT NOT NULL,
    version INTEGER NOT NULL DEFAULT 1,
    status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'ok', 'failed', 'missing')),
    error TEXT,
    duration REAL,
    sample_rate INTEGER,
    channels INTEGER,
    labels TEXT NOT NULL DEFAULT '{}',
    added_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS tracks_status ON tracks (status);
CREATE INDEX IF NOT EXISTS tracks_fingerprint ON tracks (fingerprint);
CREATE TABLE IF NOT EXISTS spectrograms (
    track_id INTEGER PRIMARY KEY REFERENCES tracks (id) ON DELETE CASCADE,
    shard INTEGER NOT NULL,
    offset INTEGER NOT NULL,
    frames INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
# Columns added since the first schema, added in place to an older catalog when it is opened for writing.
# A track is a file, or (from a CUE sheet) seconds [span_start, span_end) of `file`; its `path` is then the file's
# path, '#' and its number in the sheet, unique like any path.
ADDED_COLUMNS = {"file": "TEXT", "span_start": "REAL", "span_end": "REAL"}
BUSY_TIMEOUT_SECONDS = 30.0
MAX_BOUND_PARAMETERS = 900  # SQLite's limit on bound parameters is 999 on old builds
# Reads through a memory map, not a read() call per page: a server reads a dozen scattered rows per answer.
READ_MAP_BYTES = 1 << 30


def map_for_reading(connection: sqlite3.Connection) -> None:
    """Let `connection` read the database file through a memory map (address space only; SQLite stays safe with
    writers in other processes)."""
    connection.execute(f"PRAGMA mmap_size={READ_MAP_BYTES}")


def _track_columns(present: set[str], prefix: str = "") -> str:
    """The select list of a Track's columns (of table alias `prefix`); a read-only catalog of an older version lacks
    the columns added since, read as NULL."""
    return ", ".join(f"{prefix}{name}" if name in present else f"NULL AS {name}" for name in TRACK_FIELDS)


def _writable(path: Path) -> bool:
    """Whether SQLite can write the catalog and its journal files beside it."""
    return os.access(path, os.W_OK) and os.access(path.parent, os.W_OK)


@dataclass
class Track:
    id: int
    path: str
    size: int
    mtime_ns: int
    fingerprint: str
    version: int
    status: str
    error: str | None
    duration: float | None
    sample_rate: int | None
    channels: int | None
    labels: dict[str, str] = field(default_factory=dict)
    file: str | None = None  # the audio file of a CUE sheet track (None: `path` itself)
    span_start: float | None = None
    span_end: float | None = None  # None: to the end of the file

    @property
    def audio_path(self) -> Path:
        """The file to decode."""
        return Path(self.file or self.path)

    @property
    def span(self) -> tuple[float, float | None] | None:
        """(start, end) seconds of the file that are this track, or None for the whole file."""
        return None if self.span_start is None else (self.span_start, self.span_end)

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Track:
        """The track of a row that holds TRACK_FIELDS, in their order (a server reads a dozen per answer)."""
        values = list(row)
        values[_LABELS_AT] = json.loads(values[_LABELS_AT] or "{}")
        return cls(*values)


TRACK_FIELDS = [f.name for f in fields(Track)]  # the columns a Track is read from, in its fields' order
_LABELS_AT = TRACK_FIELDS.index("labels")


@dataclass(frozen=True)
class Placement:
    """Where a track's log-mel lives in the cache: `frames` frames from frame `offset` of shard `shard`."""

    track_id: int
    shard: int
    offset: int
    frames: int


class Catalog:
    def __init__(self, path: Path, check_same_thread: bool = True) -> None:
        self.path = path
        # a home that cannot be written (a read-only disk or share): read the catalog as it is, writing nothing, not
        # even SQLite's shared-memory file; nobody can change it meanwhile
        self.read_only = path.exists() and not _writable(path)
        if self.read_only:
            uri = f"{path.resolve().as_uri()}?mode=ro&immutable=1"
            self.connection = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=check_same_thread)
        else:
            self.connection = sqlite3.connect(
                path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None, check_same_thread=check_same_thread
            )
        self.connection.row_factory = sqlite3.Row
        try:
            map_for_reading(self.connection)
            if not self.read_only:
                self.connection.execute("PRAGMA journal_mode=WAL")
                self.connection.execute("PRAGMA foreign_keys=ON")
                self.connection.execute("PRAGMA synchronous=NORMAL")
                self.connection.executescript(SCHEMA)
                self._add_new_columns()
            self.connection.execute("SELECT COUNT(*) FROM tracks").fetchone()
            present = {row["name"] for row in self.connection.execute("PRAGMA table_info(tracks)")}
        except sqlite3.OperationalError as error:
            raise HomeBusyError(f"{path}: catalog is busy or unreadable: {error}") from None
        self._columns = _track_columns(present)
        self._columns_of_t = _track_columns(present, "t.")

    def _add_new_columns(self) -> None:
        """Bring a catalog written by an older version up to the current schema (new columns are NULL)."""
        present = {row["name"] for row in self.connection.execute("PRAGMA table_info(tracks)")}
        for name, kind in ADDED_COLUMNS.items():
            if name not in present:
                self.connection.execute(f"ALTER TABLE tracks ADD COLUMN {name} {kind}")

    def close(self) -> None:
        self.connection.close()

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        self.connection.execute("BEGIN IMMEDIATE")
        try:
            yield self.connection
        except BaseException:
            self.connection.execute("ROLLBACK")
            raise
        self.connection.execute("COMMIT")

    # ---- meta
    def get_meta(self, key: str) -> str | None:
        row = self.connection.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else row["value"]

    def set_meta(self, key: str, value: str) -> None:
        with self.transaction() as db:
            db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    # ---- registration
    def sync(self, paths: Iterable[Path], roots: Iterable[Path], cue_tracks: Iterable[CueTrack] = ()) -> SyncResult:
        """Register `paths` and the tracks of CUE sheets; mark changed ones pending; mark catalog tracks under `roots`
        that are gone (or whose file a CUE sheet now cuts into tracks) as missing."""
        result = SyncResult()
        now = time.time()
        seen: set[str] = set()
        with self.transaction() as db:
            for path in paths:
                seen.add(str(path))
                register(db, Entry(str(path), path, {"folder": path.parent.name}), now, result)
            for cue in cue_tracks:
                seen.add(cue.key)
                labels = {"folder": cue.file.parent.name, **cue.labels()}
                register(db, Entry(cue.key, cue.file, labels, cue.start, cue.end), now, result)
            for root in roots:
                result.missing += mark_missing_under(db, root, seen, now)
        return result

    # ---- conversion results
    def pending_conversion(self) -> list[Track]:
        """Tracks to convert: pending, or ok without a cached log-mel (after a cache reset)."""
        rows = self.connection.execute(
            f"SELECT {self._columns_of_t} FROM tracks t LEFT JOIN spectrograms s ON s.track_id = t.id"
            " WHERE t.status = 'pending' OR (t.status = 'ok' AND s.track_id IS NULL) ORDER BY t.id"
        ).fetchall()
        return [Track.from_row(row) for row in rows]

    def record_converted(
        self,
        db: sqlite3.Connection,
        placement: Placement,
        duration: float,
        sample_rate: int,
        channels: int,
        tags: dict[str, str],
    ) -> None:
        row = db.execute("SELECT labels FROM tracks WHERE id = ?", (placement.track_id,)).fetchone()
        labels = {**tags, **json.loads(row["labels"])} if row else tags
        db.execute(
            "UPDATE tracks SET status = 'ok', error = NULL, duration = ?, sample_rate = ?, channels = ?, labels = ?,"
            " updated_at = ? WHERE id = ?",
            (duration, sample_rate, channels, json.dumps(labels), time.time(), placement.track_id),
        )
        db.execute(
            "INSERT OR REPLACE INTO spectrograms (track_id, shard, offset, frames) VALUES (?, ?, ?, ?)",
            (placement.track_id, placement.shard, placement.offset, placement.frames),
        )

    @staticmethod
    def record_failed(db: sqlite3.Connection, track_id: int, error: str) -> None:
        db.execute(
            "UPDATE tracks SET status = 'failed', error = ?, updated_at = ? WHERE id = ?",
            (error, time.time(), track_id),
        )

    def reset_spectrograms(self) -> None:
        """Forget every cached log-mel (after the preprocessing settings changed)."""
        with self.transaction() as db:
            db.execute("DELETE FROM spectrograms")

    def shard_ends(self) -> dict[int, int]:
        """For each shard, the end (in frames) of the last log-mel the catalog refers to."""
        rows = self.connection.execute("SELECT shard, MAX(offset + frames) AS end_ FROM spectrograms GROUP BY shard")
        return {row["shard"]: row["end_"] for row in rows}

    # ---- queries
    def tracks(self, status: str | None = "ok") -> list[Track]:
        query = f"SELECT {self._columns} FROM tracks" + (" WHERE status = ?" if status else "") + " ORDER BY id"
        return [Track.from_row(row) for row in self.connection.execute(query, (status,) if status else ())]

    def live_versions(self) -> dict[int, int]:
        """{id: version} of every ok track, without building the tracks (what the embeddings are checked against)."""
        rows = self.connection.execute("SELECT id, version FROM tracks WHERE status = 'ok' ORDER BY id")
        return {row["id"]: row["version"] for row in rows}

    def track(self, track_id: int) -> Track | None:
        row = self.connection.execute(f"SELECT {self._columns} FROM tracks WHERE id = ?", (track_id,)).fetchone()
        return None if row is None else Track.from_row(row)

    def tracks_by_id(self, track_ids: list[int]) -> dict[int, Track]:
        """The tracks of `track_ids` that are in the catalog (any status), in one query per 900 ids."""
        found: dict[int, Track] = {}
        for start in range(0, len(track_ids), MAX_BOUND_PARAMETERS):
            chunk = track_ids[start : start + MAX_BOUND_PARAMETERS]
            query = f"SELECT {self._columns} FROM tracks WHERE id IN ({','.join('?' * len(chunk))})"
            found.update((track.id, track) for track in map(Track.from_row, self.connection.execute(query, chunk)))
        return found

    def track_by_path(self, path: Path) -> Track | None:
        row = self.connection.execute(f"SELECT {self._columns} FROM tracks WHERE path = ?", (str(path),)).fetchone()
        return None if row is None else Track.from_row(row)

    def twins(self) -> dict[int, frozenset[int]]:
        """{id: the ids of every track with its content fingerprint, itself included}, for the tracks that share their
        content with another (copies of one file); the others are left out."""
        rows = self.connection.execute(
            "SELECT id, fingerprint FROM tracks WHERE fingerprint IN"
            " (SELECT fingerprint FROM tracks GROUP BY fingerprint HAVING COUNT(*) > 1)"
        )
        groups: dict[str, set[int]] = {}
        for track_id, fingerprint in rows:
            groups.setdefault(fingerprint, set()).add(track_id)
        return {track_id: frozenset(group) for group in groups.values() for track_id in group}

    def tracks_with_fingerprint(self, fingerprint: str) -> list[Track]:
        rows = self.connection.execute(f"SELECT {self._columns} FROM tracks WHERE fingerprint = ?", (fingerprint,))
        return [Track.from_row(row) for row in rows]

    def placements(self) -> dict[int, Placement]:
        """Cache placement of every ok track."""
        rows = self.connection.execute(
            "SELECT s.* FROM spectrograms s JOIN tracks t ON t.id = s.track_id WHERE t.status = 'ok' ORDER BY t.id"
        )
        return {row["track_id"]: Placement(row["track_id"], row["shard"], row["offset"], row["frames"]) for row in rows}

    def status_counts(self) -> dict[str, int]:
        rows = self.connection.execute("SELECT status, COUNT(*) AS n FROM tracks GROUP BY status")
        return {row["status"]: row["n"] for row in rows}

    def failures(self) -> list[tuple[str, str]]:
        rows = self.connection.execute("SELECT path, error FROM tracks WHERE status = 'failed' ORDER BY path")
        return [(row["path"], row["error"]) for row in rows]

    def set_labels(self, updates: dict[int, dict[str, str]]) -> None:
        """Merge label values into tracks' labels (given values win)."""
        with self.transaction() as db:
            for track_id, values in updates.items():
                row = db.execute("SELECT labels FROM tracks WHERE id = ?", (track_id,)).fetchone()
                if row is not None:
                    merged = {**json.loads(row["labels"]), **values}
                    db.execute("UPDATE tracks SET labels = ? WHERE id = ?", (json.dumps(merged), track_id))

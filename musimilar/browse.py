"""Browse the catalog: pages of tracks, searched by words in their path and labels, read-only.

Paging and searching happen in SQLite, so a page of a 100k-track library costs one indexed range scan (no text)
or one pass over the rows (with text), and nothing is held in memory between requests. The connection is opened
read-only: a front end that browses never writes the catalog, and never waits for a writer (WAL readers see the
last committed state).
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from musimilar.catalog import map_for_reading
from musimilar.errors import NotReadyError

MAX_PAGE = 500  # tracks in one page, whatever the caller asks
MAX_WORDS = 8  # search words taken from a query (each must match)
LIKE_ESCAPE = "\\"


@dataclass
class TrackEntry:
    """One track as a listing shows it (the keys of a recommendation, less rank and similarity)."""

    track_id: int
    path: str
    labels: dict[str, str]
    duration: float | None

    def as_dict(self) -> dict[str, Any]:
        return {"track_id": self.track_id, "path": self.path, "labels": self.labels, "duration": self.duration}


@dataclass
class TrackPage:
    """Tracks `offset` to `offset + len(tracks)` of the `total` that match `query`, by track id."""

    query: str
    offset: int
    total: int
    tracks: list[TrackEntry] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "query": self.query,
            "offset": self.offset,
            "total": self.total,
            "tracks": [track.as_dict() for track in self.tracks],
        }


def open_readonly(catalog_path: Path) -> sqlite3.Connection:
    """A read-only connection to the catalog (usable from any thread; each thread should have its own)."""
    if not catalog_path.is_file():
        raise NotReadyError(f"{catalog_path}: no catalog (run `musimilar convert` or `musimilar train` first)")
    connection = sqlite3.connect(f"file:{catalog_path}?mode=ro", uri=True, timeout=30.0, check_same_thread=False)
    connection.row_factory = sqlite3.Row
    map_for_reading(connection)
    return connection


def search_tracks(connection: sqlite3.Connection, query: str = "", offset: int = 0, limit: int = 50) -> TrackPage:
    """Converted tracks whose path or labels contain every word of `query` (case-insensitive), by track id."""
    offset, limit = max(0, offset), max(0, min(limit, MAX_PAGE))
    where, parameters = _text_filter(query)
    # Two statements, not a window count: COUNT(*) OVER () would materialise every match before the LIMIT, and a
    # broad query (or none) would pay for all of them; the page itself stops after `limit` rows in id order.
    total = connection.execute(f"SELECT COUNT(*) FROM tracks WHERE {where}", parameters).fetchone()[0]
    rows = connection.execute(
        f"SELECT id, path, labels, duration FROM tracks WHERE {where} ORDER BY id LIMIT ? OFFSET ?",
        (*parameters, limit, offset),
    ).fetchall()
    return TrackPage(query, offset, int(total), [_entry(row) for row in rows])


def get_track(connection: sqlite3.Connection, track_id: int) -> TrackEntry | None:
    """A converted track by id, or None."""
    row = connection.execute(
        "SELECT id, path, labels, duration FROM tracks WHERE id = ? AND status = 'ok'", (track_id,)
    ).fetchone()
    return None if row is None else _entry(row)


def get_tracks(connection: sqlite3.Connection, track_ids: list[int]) -> dict[int, TrackEntry]:
    """Converted tracks by id (absent ids are left out)."""
    found: dict[int, TrackEntry] = {}
    for start in range(0, len(track_ids), 900):  # SQLite's limit on bound parameters is 999 on old builds
        chunk = track_ids[start : start + 900]
        marks = ",".join("?" * len(chunk))
        rows = connection.execute(
            f"SELECT id, path, labels, duration FROM tracks WHERE status = 'ok' AND id IN ({marks})", chunk
        )
        found.update({row["id"]: _entry(row) for row in rows})
    return found


def _text_filter(query: str) -> tuple[str, tuple[str, ...]]:
    """SQL conditions for `query`: LIKE ignores the case of ASCII letters; labels are stored as ASCII-escaped JSON."""
    clauses = ["status = 'ok'"]
    parameters: list[str] = []
    for word in query.split()[:MAX_WORDS]:
        clauses.append(f"(path LIKE ? ESCAPE '{LIKE_ESCAPE}' OR labels LIKE ? ESCAPE '{LIKE_ESCAPE}')")
        parameters += [f"%{_escape_like(word)}%", f"%{_escape_like(json.dumps(word)[1:-1])}%"]
    return " AND ".join(clauses), tuple(parameters)


def _escape_like(word: str) -> str:
    return word.replace(LIKE_ESCAPE, LIKE_ESCAPE * 2).replace("%", LIKE_ESCAPE + "%").replace("_", LIKE_ESCAPE + "_")


def _entry(row: sqlite3.Row) -> TrackEntry:
    return TrackEntry(int(row["id"]), row["path"], json.loads(row["labels"] or "{}"), row["duration"])

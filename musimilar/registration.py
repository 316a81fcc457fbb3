"""Registration: what a scan found, compared with the catalog (new, changed, unchanged, missing tracks).

A track is a file, or (from a CUE sheet) seconds [start, end) of a file, registered under the file's path, '#' and
its number in the sheet.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

FINGERPRINT_SPAN = 1 << 16  # bytes hashed at the start, middle and end of a file


def content_fingerprint(path: Path, size: int) -> str:
    """A fast content fingerprint: the size and three 64 KiB spans (start, middle, end) of the file."""
    digest = hashlib.blake2b(str(size).encode(), digest_size=12)
    with open(path, "rb") as stream:
        for position in (0, max(0, size // 2 - FINGERPRINT_SPAN // 2), max(0, size - FINGERPRINT_SPAN)):
            stream.seek(position)
            digest.update(stream.read(FINGERPRINT_SPAN))
    return digest.hexdigest()


@dataclass(frozen=True)
class Entry:
    """What a scan registers: a catalog key (the path, or FILE#NN for a CUE track), the file and its labels."""

    key: str
    file: Path
    labels: dict[str, str]
    start: float | None = None
    end: float | None = None

    @property
    def span(self) -> tuple[float, float | None] | None:
        return None if self.start is None else (self.start, self.end)

    @property
    def span_columns(self) -> tuple[float | None, float | None]:
        return self.start, self.end

    @property
    def span_suffix(self) -> str:
        """Tells apart the fingerprints of the tracks of one file (they are not duplicates of each other)."""
        return "" if self.start is None else f"@{self.start:.3f}-{'' if self.end is None else f'{self.end:.3f}'}"


def _is_cut(row: sqlite3.Row, seen: set[str]) -> bool:
    """Whether a whole-file track is now catalogued as the tracks of its CUE sheet."""
    return f"{row['path']}#01" in seen


@dataclass
class SyncResult:
    """What a scan found compared with the catalog."""

    new: int = 0
    changed: int = 0
    unchanged: int = 0
    missing: int = 0
    unreadable: list[tuple[str, str]] = field(default_factory=list)


def register(db: sqlite3.Connection, entry: Entry, now: float, result: SyncResult) -> None:
    """Add a scanned track, or mark it changed (pending) or unchanged."""
    try:
        stat = entry.file.stat()
        row = db.execute("SELECT * FROM tracks WHERE path = ?", (entry.key,)).fetchone()
        respanned = row is not None and (row["span_start"], row["span_end"]) != entry.span_columns
        if respanned:
            row = _respan(db, row, entry)
        same_file = row is not None and row["size"] == stat.st_size and row["mtime_ns"] == stat.st_mtime_ns
        if same_file and not respanned:
            if row["status"] == "missing":
                db.execute("UPDATE tracks SET status = 'pending', updated_at = ? WHERE id = ?", (now, row["id"]))
                result.changed += 1
            else:
                result.unchanged += 1
            return
        fingerprint = content_fingerprint(entry.file, stat.st_size) + entry.span_suffix
    except OSError as error:
        result.unreadable.append((entry.key, error.strerror or str(error)))
        return
    if row is None:
        db.execute(
            "INSERT INTO tracks (path, size, mtime_ns, fingerprint, labels, added_at, updated_at, file,"
            " span_start, span_end) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                entry.key,
                stat.st_size,
                stat.st_mtime_ns,
                fingerprint,
                json.dumps(entry.labels),
                now,
                now,
                None if entry.span is None else str(entry.file),
                *entry.span_columns,
            ),
        )
        result.new += 1
    elif row["fingerprint"] == fingerprint and row["status"] != "missing":
        db.execute("UPDATE tracks SET mtime_ns = ?, updated_at = ? WHERE id = ?", (stat.st_mtime_ns, now, row["id"]))
        result.unchanged += 1
    else:
        db.execute(
            "UPDATE tracks SET size = ?, mtime_ns = ?, fingerprint = ?, version = version + 1, status = 'pending',"
            " error = NULL, updated_at = ? WHERE id = ?",
            (stat.st_size, stat.st_mtime_ns, fingerprint, now, row["id"]),
        )
        db.execute("DELETE FROM spectrograms WHERE track_id = ?", (row["id"],))
        result.changed += 1


def _respan(db: sqlite3.Connection, row: sqlite3.Row, entry: Entry) -> sqlite3.Row:
    """An edited CUE sheet moved a track: convert it again (its row is then treated as changed)."""
    db.execute(
        "UPDATE tracks SET span_start = ?, span_end = ?, labels = ?, fingerprint = '' WHERE id = ?",
        (*entry.span_columns, json.dumps(entry.labels), row["id"]),
    )
    return db.execute("SELECT * FROM tracks WHERE id = ?", (row["id"],)).fetchone()


def mark_missing_under(db: sqlite3.Connection, root: Path, seen: set[str], now: float) -> int:
    """Tracks under `root` not seen by this scan whose file is gone, or that a CUE sheet added or removed."""
    prefix = str(root).rstrip("/") + "/"
    rows = db.execute(
        "SELECT id, path, file FROM tracks WHERE status != 'missing' AND substr(path, 1, ?) = ?",
        (len(prefix), prefix),
    ).fetchall()
    gone = [
        row["id"]
        for row in rows
        if row["path"] not in seen and (row["file"] is not None or not Path(row["path"]).exists() or _is_cut(row, seen))
    ]
    for track_id in gone:
        db.execute("UPDATE tracks SET status = 'missing', updated_at = ? WHERE id = ?", (now, track_id))
        db.execute("DELETE FROM spectrograms WHERE track_id = ?", (track_id,))
    return len(gone)

"""Track labels: where they come from, in order of preference, and how a label file is read.

A track's labels are a dict in the catalog. Registering a file sets "folder" (its parent folder's name); converting
it adds its artist, album and genre tags; importing a label file (`musimilar labels import FILE`, or
`convert --labels FILE`) stores each of the file's columns under its own name, over the tag of the same name. So
`labels["genre"]` is the file's genre where the file gives one, else the tag's.

A label file is CSV with a header row: a `path` column and one or more label columns, e.g. `path,label` or
`path,genre,artist,album`. Paths are absolute or relative to the file's folder; empty cells set nothing.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from musimilar.catalog import Catalog, Track
from musimilar.errors import MusimilarError
from musimilar.home import Home

PATH_COLUMN = "path"
FOLDER = "folder"
DEFAULT_KEYS = ("label", "genre", FOLDER)  # the default --by: the first of these any track has

LabelMap = dict[Path, dict[str, str]]


@dataclass
class LabelImport:
    """What importing a label file did."""

    rows: int
    matched: int
    keys: list[str]
    unmatched: list[str] = field(default_factory=list)  # paths of the file that name no track of the catalog

    def as_dict(self) -> dict[str, object]:
        return {"rows": self.rows, "matched": self.matched, "keys": self.keys, "unmatched": self.unmatched}


def read_label_csv(path: Path) -> LabelMap:
    """{resolved audio path: {label key: value}} from a label file; errors are one line: `file: line N: problem`."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as stream:
            return _parse_rows(path, csv.reader(stream))
    except FileNotFoundError:
        raise MusimilarError(f"{path}: no such label file") from None
    except UnicodeDecodeError:
        raise MusimilarError(f"{path}: not UTF-8 text") from None
    except OSError as error:
        raise MusimilarError(f"{path}: cannot read it: {error.strerror}") from None


def _parse_rows(path: Path, rows: Iterable[list[str]]) -> LabelMap:
    mapping: LabelMap = {}
    first_line: dict[Path, int] = {}
    keys: list[str] | None = None
    line = 0
    try:
        for line, row in enumerate(rows, start=1):
            if not any(cell.strip() for cell in row):
                continue
            if keys is None:
                keys = _header_keys(path, line, row)
                continue
            if len(row) != len(keys) + 1:
                raise MusimilarError(
                    f"{path}: line {line}: expected {len(keys) + 1} fields "
                    f"({PATH_COLUMN},{','.join(keys)}), got {len(row)}"
                )
            audio = _audio_path(path, line, row[0])
            if audio in first_line:
                raise MusimilarError(
                    f"{path}: line {line}: {row[0].strip()} is listed twice (first on line {first_line[audio]})"
                )
            first_line[audio] = line
            mapping[audio] = {key: cell.strip() for key, cell in zip(keys, row[1:]) if cell.strip()}
    except csv.Error as error:
        raise MusimilarError(f"{path}: line {line}: {error}") from None
    if keys is None:
        raise MusimilarError(f"{path}: empty label file (expected a header such as {PATH_COLUMN},genre)")
    return mapping


def _header_keys(path: Path, line: int, row: list[str]) -> list[str]:
    """The label keys a header names after its path column, lower-cased."""
    names = [cell.strip().lower() for cell in row]
    if names[0] != PATH_COLUMN:
        raise MusimilarError(
            f"{path}: line {line}: the header's first column must be '{PATH_COLUMN}' "
            f"(e.g. {PATH_COLUMN},genre), got '{row[0].strip()}'"
        )
    keys = names[1:]
    if not keys:
        raise MusimilarError(f"{path}: line {line}: no label columns after '{PATH_COLUMN}'")
    for position, key in enumerate(keys):
        if not key:
            raise MusimilarError(f"{path}: line {line}: column {position + 2} has no name")
        if key in keys[:position] or key == PATH_COLUMN:
            raise MusimilarError(f"{path}: line {line}: column '{key}' appears twice")
    return keys


def _audio_path(path: Path, line: int, cell: str) -> Path:
    text = cell.strip()
    if not text:
        raise MusimilarError(f"{path}: line {line}: empty path")
    audio = Path(text).expanduser()
    return (audio if audio.is_absolute() else path.parent / audio).resolve()


def match_tracks(tracks: Iterable[Track], mapping: LabelMap) -> tuple[dict[int, dict[str, str]], list[Path]]:
    """({track id: the file's labels for it}, paths of the file that name no track)."""
    by_path = {Path(track.path): track.id for track in tracks}
    matched = {by_path[path]: labels for path, labels in mapping.items() if path in by_path}
    return matched, [path for path in mapping if path not in by_path]


def apply_labels(catalog: Catalog, mapping: LabelMap) -> tuple[int, list[Path]]:
    """Store a label file's values in the catalog (over tags of the same name): (tracks matched, unmatched paths)."""
    matched, unmatched = match_tracks(catalog.tracks(status=None), mapping)
    catalog.set_labels(matched)
    return len(matched), unmatched


def import_labels(home: Home, mapping: LabelMap) -> LabelImport:
    """apply_labels on the home's catalog; the caller holds the home's lock."""
    with Catalog(home.catalog_path) as catalog:
        matched, unmatched = apply_labels(catalog, mapping)
    keys = sorted({key for labels in mapping.values() for key in labels})
    return LabelImport(len(mapping), matched, keys, [str(path) for path in unmatched])


def with_labels(tracks: Sequence[Track], mapping: LabelMap) -> tuple[list[Track], list[Path]]:
    """The tracks with a label file's values laid over their stored labels (nothing is written), and the
    file's paths that name none of them."""
    matched, unmatched = match_tracks(tracks, mapping)
    merged = [
        replace(track, labels={**track.labels, **matched[track.id]}) if track.id in matched else track
        for track in tracks
    ]
    return merged, unmatched


def label_of(track: Track, by: str) -> str | None:
    """The track's label for `by` (a file's column or tag of that name; for "folder", its parent folder), or None."""
    value = track.labels.get(by)
    if by == FOLDER and not value:
        value = Path(track.path).parent.name
    text = value.strip() if isinstance(value, str) else ""
    return text or None


def default_by(tracks: Iterable[Track]) -> str:
    """ "label" when any track has one, else "genre" when any has one, else "folder"."""
    present = {key for track in tracks for key, value in track.labels.items() if value}
    return next((key for key in DEFAULT_KEYS[:-1] if key in present), FOLDER)


def known_keys(tracks: Iterable[Track]) -> list[str]:
    """Every label key some track has, sorted: what --by can name."""
    return sorted({key for track in tracks for key, value in track.labels.items() if value} | {FOLDER})

"""Playlist files any player reads: extended M3U8 and XSPF, with absolute paths or paths relative to a folder."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote, urlparse
from xml.sax.saxutils import escape

from musimilar.errors import MusimilarError
from musimilar.home import atomic_write_text
from musimilar.tags import describe_track

PLAYLIST_FORMATS = ("m3u", "xspf")


@dataclass(frozen=True)
class PlaylistEntry:
    path: Path  # absolute
    seconds: int  # -1 when unknown, as #EXTINF writes it
    artist: str | None
    title: str

    @property
    def display(self) -> str:
        return f"{self.artist} - {self.title}" if self.artist else self.title


def entries_for(paths: Iterable[str | Path]) -> list[PlaylistEntry]:
    """One entry per file, described from its tags (length, artist, title; the file name when untagged)."""
    entries = []
    for path in paths:
        absolute = Path(path).expanduser().resolve()
        description = describe_track(absolute)
        entries.append(PlaylistEntry(absolute, description.seconds, description.artist, description.title))
    return entries


def location(path: Path, relative_to: Path | None) -> str:
    """The path as a playlist line writes it: absolute, or relative to `relative_to` with forward slashes."""
    if relative_to is None:
        return str(path)
    return Path(os.path.relpath(path, Path(relative_to).expanduser().resolve())).as_posix()


def m3u8_text(entries: list[PlaylistEntry], relative_to: Path | None = None) -> str:
    """Extended M3U (UTF-8): `#EXTM3U`, then `#EXTINF:<seconds>,<artist> - <title>` and the path of each track."""
    lines = ["#EXTM3U"]
    for entry in entries:
        lines.append(f"#EXTINF:{entry.seconds},{_one_line(entry.display)}")
        lines.append(location(entry.path, relative_to))
    return "\n".join(lines) + "\n"


def xspf_text(entries: list[PlaylistEntry], relative_to: Path | None = None, title: str | None = None) -> str:
    """XSPF 1: a `file://` URI per track, or a relative URI when `relative_to` is given."""
    lines = ['<?xml version="1.0" encoding="UTF-8"?>', '<playlist version="1" xmlns="http://xspf.org/ns/0/">']
    if title:
        lines.append(f"  <title>{escape(title)}</title>")
    lines.append("  <trackList>")
    for entry in entries:
        uri = quote(location(entry.path, relative_to))
        if relative_to is None:
            uri = "file://" + uri
        lines.append("    <track>")
        lines.append(f"      <location>{escape(uri)}</location>")
        lines.append(f"      <title>{escape(entry.title)}</title>")
        if entry.artist:
            lines.append(f"      <creator>{escape(entry.artist)}</creator>")
        if entry.seconds >= 0:
            lines.append(f"      <duration>{entry.seconds * 1000}</duration>")
        lines.append("    </track>")
    lines += ["  </trackList>", "</playlist>"]
    return "\n".join(lines) + "\n"


def playlist_text(
    playlist_format: str, entries: list[PlaylistEntry], relative_to: Path | None = None, title: str | None = None
) -> str:
    if playlist_format == "xspf":
        return xspf_text(entries, relative_to, title)
    return m3u8_text(entries, relative_to)


def write_playlist(path: Path, text: str) -> None:
    """Replace `path` atomically: a player reading it sees the old playlist or the new one, never half of one."""
    atomic_write_text(Path(path).expanduser(), text)


def read_m3u(path: Path) -> list[Path]:
    """The tracks of an M3U/M3U8 file, relative lines resolved against the file's folder."""
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise MusimilarError(f"{path}: cannot read this playlist: {error}") from None
    folder = Path(path).expanduser().resolve().parent
    tracks = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("file://"):
            line = unquote(urlparse(line).path)
        tracks.append((folder / line).resolve())
    return tracks


def _one_line(text: str) -> str:
    return " ".join(text.split())

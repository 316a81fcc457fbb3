"""CUE sheets: a single-file album (one FLAC/APE/WAV of the whole disc) and the sheet that cuts it into tracks."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from musimilar.audio import is_audio

FRAMES_PER_SECOND = 75  # a CUE time is mm:ss:ff in CD frames
TIME = re.compile(r"^(\d+):(\d{1,2}):(\d{1,2})$")


@dataclass(frozen=True)
class CueTrack:
    """One entry of a sheet: seconds [start, end) of `file` (end None: to the end of the file)."""

    file: Path
    number: int
    start: float
    end: float | None
    title: str | None = None
    performer: str | None = None
    album: str | None = None

    @property
    def key(self) -> str:
        """The track's name in the catalog: the file's path, '#' and its number in the sheet."""
        return f"{self.file}#{self.number:02d}"

    def labels(self) -> dict[str, str]:
        values = {"title": self.title, "artist": self.performer, "album": self.album}
        return {key: value for key, value in values.items() if value}


def read_cue(sheet: Path) -> list[CueTrack]:
    """The tracks of a sheet that names one audio file; [] for a sheet that cannot be used (several files, an
    audio file that is not there, no track). A sheet naming `album.wav` beside `album.flac` means the flac."""
    try:
        text = _decode(sheet.read_bytes())
    except OSError:
        return []
    files, entries, album, album_performer = _parse(text)
    if len(files) != 1 or not entries:
        return []
    audio = _audio_file(sheet.parent, files[0])
    if audio is None:
        return []
    tracks = []
    for index, (number, start, title, performer) in enumerate(entries):
        end = entries[index + 1][1] if index + 1 < len(entries) else None
        tracks.append(CueTrack(audio, number, start, end, title, performer or album_performer, album))
    return tracks


def _parse(text: str) -> tuple[list[str], list[tuple[int, float, str | None, str | None]], str | None, str | None]:
    """(files, [(number, start seconds, title, performer)], album title, album performer)."""
    files: list[str] = []
    entries: list[tuple[int, float, str | None, str | None]] = []
    album = album_performer = None
    current: dict[str, object] | None = None
    for line in text.splitlines():
        words = _split(line)
        if not words:
            continue
        command, arguments = words[0].upper(), words[1:]
        if command == "FILE" and arguments:
            files.append(arguments[0])
        elif command == "TRACK" and arguments and arguments[0].isdigit():
            current = {"number": int(arguments[0])}
        elif command in ("TITLE", "PERFORMER") and arguments:
            if current is None:
                album, album_performer = (
                    (arguments[0], album_performer) if command == "TITLE" else (album, arguments[0])
                )
            else:
                current[command.lower()] = arguments[0]
        elif command == "INDEX" and current is not None and arguments[:1] == ["01"] and len(arguments) == 2:
            start = _seconds(arguments[1])
            if start is not None:
                entries.append((current["number"], start, current.get("title"), current.get("performer")))  # type: ignore[arg-type]
    return files, entries, album, album_performer


def _split(line: str) -> list[str]:
    try:
        return shlex.split(line.strip())
    except ValueError:  # an unbalanced quote
        return line.split()


def _seconds(text: str) -> float | None:
    match = TIME.match(text)
    if match is None:
        return None
    minutes, seconds, frames = (int(group) for group in match.groups())
    return minutes * 60 + seconds + frames / FRAMES_PER_SECOND


def _decode(data: bytes) -> str:
    """CUE sheets come in UTF-8 (with or without a BOM) or, from older rippers, in Windows-1252."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def _audio_file(folder: Path, named: str) -> Path | None:
    path = folder / named
    if path.is_file() and is_audio(path):
        return path
    siblings = sorted(p for p in folder.glob(f"{Path(named).stem}.*") if p.is_file() and is_audio(p))
    return siblings[0] if len(siblings) == 1 else None

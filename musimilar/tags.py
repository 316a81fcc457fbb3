"""Read the artist, album and genre tags of an audio file (mutagen reads ID3, Vorbis comments, FLAC, MP4...)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

TAG_KEYS = ("artist", "album", "genre")


def read_tags(path: Path) -> dict[str, str]:
    """The file's artist/album/genre tags that are set; {} when it has none or they cannot be read."""
    import mutagen

    try:
        audio = mutagen.File(str(path), easy=True)
    except Exception:  # a damaged tag block must never fail a track whose audio decodes
        return {}
    if audio is None or not audio.tags:
        return {}
    found: dict[str, str] = {}
    for key in TAG_KEYS:
        try:
            values = audio.tags.get(key)
        except (KeyError, ValueError):
            continue
        if values:
            text = str(values[0]).strip()
            if text:
                found[key] = text
    return found


@dataclass(frozen=True)
class TrackDescription:
    """What a playlist line shows: length in whole seconds (-1 when unknown), artist and title."""

    seconds: int
    artist: str | None
    title: str


def describe_track(path: Path) -> TrackDescription:
    """Length, artist and title from the file's tags; the title falls back to the file name without its suffix."""
    import mutagen

    try:
        audio = mutagen.File(str(path), easy=True)
    except Exception:  # unreadable tags still make a playable playlist line
        audio = None
    seconds = -1
    artist = title = None
    if audio is not None:
        length = getattr(audio.info, "length", None)
        seconds = int(round(length)) if length else -1
        artist = _first(audio, "artist")
        title = _first(audio, "title")
    return TrackDescription(seconds, artist, title or Path(path).stem)


def _first(audio: object, key: str) -> str | None:
    try:
        values = audio.tags.get(key) if audio.tags else None  # type: ignore[attr-defined]
    except (KeyError, ValueError):
        return None
    text = str(values[0]).strip() if values else ""
    return text or None

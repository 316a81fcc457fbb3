"""Read the artist, album and genre tags of an audio file (mutagen reads ID3, Vorbis comments, FLAC, MP4...)."""

from __future__ import annotations

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

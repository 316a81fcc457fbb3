"""Find the audio under the folders a user names, and count what is not audio so nothing goes unmentioned."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from musimilar.audio import is_audio
from musimilar.cue import CueTrack, read_cue
from musimilar.errors import MusimilarError

NO_EXTENSION = "(no extension)"


@dataclass
class Scan:
    files: list[Path] = field(default_factory=list)  # audio files, in folder order, each once
    folders: list[Path] = field(default_factory=list)  # the folders scanned (files gone from them are missing)
    ignored: Counter[str] = field(default_factory=Counter)  # extension -> files that are not audio
    cue_tracks: list[CueTrack] = field(default_factory=list)  # the tracks of single-file albums with a CUE sheet
    covered: set[Path] = field(default_factory=set)  # those albums' files: catalogued as their tracks, not whole


def scan(sources: Iterable[Path]) -> Scan:
    """Audio files under each folder (recursively, by extension, hidden entries skipped) and files named directly;
    every other file found is counted by extension. A file that a CUE sheet beside it cuts into tracks is
    catalogued as those tracks instead."""
    found = Scan()
    for source in sources:
        source = source.expanduser().resolve()
        if source.is_dir():
            found.folders.append(source)
            _walk(source, found)
        elif source.exists():
            found.files.append(source)
        else:
            raise MusimilarError(f"{source}: no such file or folder")
    found.files = [path for path in dict.fromkeys(found.files) if path not in found.covered]
    return found


def describe_ignored(ignored: dict[str, int]) -> str:
    """'412 .jpg, 3 .cue': the most frequent first."""
    ordered = sorted(ignored.items(), key=lambda item: (-item[1], item[0]))
    return ", ".join(f"{count} {extension}" for extension, count in ordered)


def _walk(folder: Path, found: Scan) -> None:
    for directory, subdirectories, names in os.walk(folder):
        subdirectories[:] = sorted(d for d in subdirectories if not d.startswith("."))
        for name in sorted(names):
            if name.startswith("."):
                continue
            path = Path(directory) / name
            if is_audio(path):
                found.files.append(path)
            elif path.suffix.lower() == ".cue" and _add_cue_tracks(path, found):
                continue
            else:
                found.ignored[path.suffix.lower() or NO_EXTENSION] += 1


def _add_cue_tracks(sheet: Path, found: Scan) -> bool:
    """Catalogue the tracks of a usable sheet; False for one that cannot be used (it is then counted as ignored)."""
    tracks = read_cue(sheet)
    if not tracks or tracks[0].file in found.covered:
        return False
    found.cue_tracks.extend(tracks)
    found.covered.add(tracks[0].file)
    return True

"""The libsndfile reader (through soundfile): wav, flac, ogg/opus, mp3, aiff and the like."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile

from musimilar.audio.samples import BLOCK_SECONDS, AudioInfo, Span, downmix
from musimilar.errors import DecodeError

NAME = "libsndfile"


def probe(path: Path) -> AudioInfo:
    """Read a file's header; raises DecodeError (kind 'unsupported' when libsndfile does not know the format)."""
    try:
        info = soundfile.info(str(path))
    except soundfile.LibsndfileError as error:
        message = _message(error)
        if "does not exist" in message and path.is_file():
            # libsndfile says this of an existing file it cannot parse (its mp3 reader on text, for one)
            message = "format not recognised"
        kind = "unsupported" if "format" in message.lower() else "unreadable"
        raise DecodeError(path, kind, message) from None
    except (OSError, RuntimeError) as error:
        raise DecodeError(path, "unreadable", str(error)) from None
    if info.frames <= 0 or info.samplerate <= 0:
        raise DecodeError(path, "empty", "no audio frames")
    return AudioInfo(info.frames / info.samplerate, info.samplerate, info.channels, NAME)


def read_spans(path: Path, info: AudioInfo, spans: list[Span]) -> list[np.ndarray]:
    """Each span (start, frames) down-mixed to mono float32, read block by block through one open file."""
    try:
        with soundfile.SoundFile(str(path)) as stream:
            return [_read_span(stream, start, frames, info.sample_rate) for start, frames in spans]
    except soundfile.LibsndfileError as error:
        raise DecodeError(path, "unreadable", _message(error)) from None
    except (OSError, RuntimeError, ValueError) as error:
        raise DecodeError(path, "unreadable", f"corrupt or truncated: {error}") from None


def _read_span(stream: soundfile.SoundFile, start: int, frames: int, sample_rate: int) -> np.ndarray:
    block = max(1, int(BLOCK_SECONDS * sample_rate))
    if start != stream.tell():
        stream.seek(start)
    parts: list[np.ndarray] = []
    remaining = frames
    while remaining > 0:
        chunk = stream.read(min(block, remaining), dtype="float32", always_2d=True)
        if chunk.shape[0] == 0:
            break
        parts.append(downmix(chunk))
        remaining -= chunk.shape[0]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)


def _message(error: soundfile.LibsndfileError) -> str:
    text = getattr(error, "error_string", None) or str(error)
    return text.strip().rstrip(".")

"""Decode an audio file to mono float32 at the target sample rate, reading only the part that is kept.

Two readers sit behind one interface: libsndfile for the formats it reads (it is the faster one there, see
docs/performance.md) and FFmpeg through PyAV for the rest. Whichever reads a file, the kept span, the down-mix, the
resampler and the errors are the same.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import numpy as np

from musimilar.audio.formats import AUDIO_EXTENSIONS, is_audio
from musimilar.audio.samples import AudioInfo, Span, check_audible, check_decoded
from musimilar.errors import DecodeError
from musimilar.settings import AudioSettings

__all__ = [
    "AUDIO_EXTENSIONS",
    "RESAMPLER",
    "AudioInfo",
    "decode",
    "decode_segments",
    "is_audio",
    "kept_window",
    "probe",
    "resample",
]


def probe(path: Path, decoder: str | None = None) -> AudioInfo:
    """Read a file's header: duration, sample rate and channels, without decoding. `decoder` forces one reader
    ("libsndfile" or "ffmpeg"); by default the file's extension chooses, and FFmpeg reads what libsndfile cannot."""
    _check_file(path)
    if decoder is not None:
        return _reader(decoder).probe(path)
    from musimilar.audio import formats, sndfile

    if formats.prefers_sndfile(path):
        try:
            return sndfile.probe(path)
        except DecodeError as error:
            if error.kind != "unsupported":
                raise
    return _reader("ffmpeg").probe(path)


def kept_window(duration: float, max_seconds: float) -> tuple[float, float]:
    """(start, length) in seconds of the part kept from a track: all of it, or its middle `max_seconds`."""
    if duration <= max_seconds:
        return 0.0, duration
    return (duration - max_seconds) / 2.0, max_seconds


def decode(
    path: Path, settings: AudioSettings, decoder: str | None = None, span: tuple[float, float] | None = None
) -> tuple[np.ndarray, AudioInfo]:
    """Decode the kept part of `path` to mono float32 at `settings.sample_rate`. Raises DecodeError.

    `span` (start, end) in seconds limits the track to that part of the file (a CUE sheet entry); end may be
    the file's end (None or beyond it)."""
    info = probe(path, decoder)
    offset, duration = _span_of(info, span)
    start, length = kept_window(duration, settings.max_seconds)
    rate = info.sample_rate
    [native] = _read(path, info, [(round((offset + start) * rate), round(length * rate))], strict=True)
    if native.size == 0:
        raise DecodeError(path, "empty", "no audio samples")
    if native.size / rate < settings.min_seconds:
        raise DecodeError(path, "too short", f"{native.size / rate:.2f} s < {settings.min_seconds:g} s")
    check_audible(path, native)
    return resample(native, rate, settings.sample_rate), info


def decode_segments(
    path: Path,
    settings: AudioSettings,
    starts: list[float],
    seconds: float,
    span: tuple[float, float] | None = None,
) -> list[np.ndarray]:
    """Decode only `seconds`-long segments starting at `starts` (seconds into the kept part of the track): a query
    reads the few seconds it embeds instead of the whole file."""
    info = probe(path)
    offset, duration = _span_of(info, span)
    start, length = kept_window(duration, settings.max_seconds)
    if length < settings.min_seconds:
        raise DecodeError(path, "too short", f"{length:.2f} s < {settings.min_seconds:g} s")
    rate = info.sample_rate
    frames = round(min(seconds, length) * rate)
    first = offset + start
    spans = [(round((first + min(begin, max(0.0, length - seconds))) * rate), frames) for begin in starts]
    segments = []
    for native in _read(path, info, spans, strict=False):
        if native.size == 0:
            raise DecodeError(path, "empty", "no audio samples")
        segments.append(resample(native, rate, settings.sample_rate))
    return segments


RESAMPLER = "soxr-hq"  # part of the preprocessing fingerprint: another resampler gives other samples


def resample(samples: np.ndarray, source_rate: int, target_rate: int) -> np.ndarray:
    """Band-limited resampling with libsoxr (high quality), float32 in and out.

    soxr is the resampler librosa uses by default; it is ten times faster than a windowed-sinc convolution here.
    """
    if source_rate == target_rate:
        return samples.astype(np.float32, copy=False)
    import soxr

    return soxr.resample(np.ascontiguousarray(samples, dtype=np.float32), source_rate, target_rate, quality="HQ")


def _span_of(info: AudioInfo, span: tuple[float, float] | None) -> tuple[float, float]:
    """(offset, duration) in seconds of the part of the file that is the track."""
    if span is None:
        return 0.0, info.duration
    start, end = span
    end = info.duration if end is None else min(end, info.duration)
    return start, max(0.0, end - start)


def _read(path: Path, info: AudioInfo, spans: list[Span], strict: bool) -> list[np.ndarray]:
    decoded = _reader(info.decoder).read_spans(path, info, spans)
    check_decoded(path, info, decoded, spans, strict)
    return decoded


def _reader(name: str) -> ModuleType:
    if name == "libsndfile":
        from musimilar.audio import sndfile

        return sndfile
    if name == "ffmpeg":
        from musimilar.audio import ffmpeg

        return ffmpeg
    raise ValueError(f"unknown decoder {name!r}: choose libsndfile or ffmpeg")


def _check_file(path: Path) -> None:
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise DecodeError(path, "missing", "no such file") from None
    except OSError as error:
        raise DecodeError(path, "unreadable", error.strerror or str(error)) from None
    if size == 0:
        raise DecodeError(path, "empty", "zero-byte file")

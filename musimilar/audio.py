"""Decode an audio file to mono float32 at the target sample rate, reading only the part that is kept."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile

from musimilar.errors import DecodeError
from musimilar.settings import AudioSettings

AUDIO_EXTENSIONS = frozenset(
    {".mp3", ".ogg", ".oga", ".opus", ".flac", ".wav", ".wave", ".aif", ".aiff", ".aifc", ".w64", ".caf"}
)
BLOCK_SECONDS = 30.0  # decode in blocks so a long file never sits in memory at its native rate and channel count
TRUNCATION_TOLERANCE = 0.98  # decoding less than this share of the announced frames means a damaged file


@dataclass(frozen=True)
class AudioInfo:
    """What the file announces about itself."""

    duration: float  # seconds, whole file
    sample_rate: int  # native Hz
    channels: int


def probe(path: Path) -> AudioInfo:
    """Read a file's header: duration, sample rate and channels, without decoding."""
    info = _open_info(path)
    return AudioInfo(duration=info.frames / info.samplerate, sample_rate=info.samplerate, channels=info.channels)


def kept_window(duration: float, max_seconds: float) -> tuple[float, float]:
    """(start, length) in seconds of the part kept from a track: all of it, or its middle `max_seconds`."""
    if duration <= max_seconds:
        return 0.0, duration
    return (duration - max_seconds) / 2.0, max_seconds


def decode(path: Path, settings: AudioSettings) -> tuple[np.ndarray, AudioInfo]:
    """Decode the kept part of `path` to mono float32 at `settings.sample_rate`. Raises DecodeError."""
    info = probe(path)
    start, length = kept_window(info.duration, settings.max_seconds)
    [native] = _read_mono(path, info, [(round(start * info.sample_rate), round(length * info.sample_rate))])
    if native.size == 0:
        raise DecodeError(path, "empty", "no audio samples")
    if native.size / info.sample_rate < settings.min_seconds:
        raise DecodeError(path, "too short", f"{native.size / info.sample_rate:.2f} s < {settings.min_seconds:g} s")
    return resample(native, info.sample_rate, settings.sample_rate), info


def decode_segments(path: Path, settings: AudioSettings, starts: list[float], seconds: float) -> list[np.ndarray]:
    """Decode only `seconds`-long segments starting at `starts` (seconds into the kept part of the track): a query
    reads the few seconds it embeds instead of the whole file."""
    info = probe(path)
    offset, length = kept_window(info.duration, settings.max_seconds)
    if length < settings.min_seconds:
        raise DecodeError(path, "too short", f"{length:.2f} s < {settings.min_seconds:g} s")
    frames = round(min(seconds, length) * info.sample_rate)
    spans = [(round((offset + min(start, max(0.0, length - seconds))) * info.sample_rate), frames) for start in starts]
    segments = []
    for native in _read_mono(path, info, spans, strict=False):
        if native.size == 0:
            raise DecodeError(path, "empty", "no audio samples")
        segments.append(resample(native, info.sample_rate, settings.sample_rate))
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


def _open_info(path: Path) -> soundfile._SoundFileInfo:
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise DecodeError(path, "missing", "no such file") from None
    except OSError as error:
        raise DecodeError(path, "unreadable", error.strerror or str(error)) from None
    if size == 0:
        raise DecodeError(path, "empty", "zero-byte file")
    try:
        info = soundfile.info(str(path))
    except soundfile.LibsndfileError as error:
        message = _libsndfile_message(error)
        if "does not exist" in message and path.is_file():
            # libsndfile says this of an existing file it cannot parse (its mp3 reader on text, for one)
            message = "format not recognised"
        kind = "unsupported" if "format" in message.lower() else "unreadable"
        raise DecodeError(path, kind, message) from None
    except (OSError, RuntimeError) as error:
        raise DecodeError(path, "unreadable", str(error)) from None
    if info.frames <= 0 or info.samplerate <= 0:
        raise DecodeError(path, "empty", "no audio frames")
    return info


def _read_mono(path: Path, info: AudioInfo, spans: list[tuple[int, int]], strict: bool = True) -> list[np.ndarray]:
    """Each span (start, frames) down-mixed to mono, read block by block through one open file. `strict` rejects a
    file that ends well before its header says (truncated); segments read near the end tolerate its rounding."""
    try:
        with soundfile.SoundFile(str(path)) as stream:
            decoded = [_read_span(stream, start, frames, info.sample_rate) for start, frames in spans]
    except soundfile.LibsndfileError as error:
        raise DecodeError(path, "unreadable", _libsndfile_message(error)) from None
    except (OSError, RuntimeError, ValueError) as error:
        raise DecodeError(path, "unreadable", f"corrupt or truncated: {error}") from None
    for samples, (_, frames) in zip(decoded, spans):
        if strict and 0 < samples.size < TRUNCATION_TOLERANCE * frames:
            raise DecodeError(
                path,
                "unreadable",
                f"truncated: decoded {samples.size / info.sample_rate:.1f} s of {frames / info.sample_rate:.1f} s",
            )
        if not np.all(np.isfinite(samples)):
            raise DecodeError(path, "unreadable", "corrupt: decoded samples are not finite")
    return decoded


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
        parts.append(_downmix(chunk))
        remaining -= chunk.shape[0]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)


def _downmix(chunk: np.ndarray) -> np.ndarray:
    """[frames, channels] -> [frames], the mean of the channels. A matrix-vector product: numpy's mean over the short
    channel axis is about 100 times slower, as slow as decoding itself."""
    channels = chunk.shape[1]
    if channels == 1:
        return chunk[:, 0]
    return chunk @ np.full(channels, 1.0 / channels, dtype=np.float32)


def _libsndfile_message(error: soundfile.LibsndfileError) -> str:
    text = getattr(error, "error_string", None) or str(error)
    return text.strip().rstrip(".")

"""The FFmpeg reader (through PyAV, whose wheels carry FFmpeg): m4a/mp4 (AAC, ALAC), WMA, WebM/Matroska, raw AAC,
Monkey's Audio, WavPack and anything else FFmpeg reads.

Like the libsndfile reader it decodes only the spans asked for: it seeks to a little before each span (codecs need
a short pre-roll to settle), decodes packet by packet and keeps the frames that fall inside the span, down-mixed to
mono as they come, so memory holds the kept mono span and never the whole file.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np

from musimilar.audio.samples import AudioInfo, Span, downmix
from musimilar.errors import DecodeError

NAME = "ffmpeg"
SEEK_PREROLL_SECONDS = 1.0  # AAC and Opus decoders need a few frames before a seek point to give exact samples
TIMESTAMP_TOLERANCE_SECONDS = 0.01  # a frame stamped further than this from where the count puts it starts anew
INTEGER_FULL_SCALE = {np.dtype(np.int16): 2.0**15, np.dtype(np.int32): 2.0**31, np.dtype(np.int64): 2.0**63}


def probe(path: Path) -> AudioInfo:
    """Read a file's header (container and audio stream); raises DecodeError."""
    with _open(path) as container:
        stream = _audio_stream(path, container)
        return AudioInfo(_duration(path, container, stream), stream.codec_context.sample_rate, _channels(stream), NAME)


def read_spans(path: Path, info: AudioInfo, spans: list[Span]) -> list[np.ndarray]:
    """Each span (start, frames) down-mixed to mono float32, decoded through one open container."""
    with _open(path) as container:
        stream = _audio_stream(path, container)
        try:
            return [
                _read_span(container, stream, start, frames, info.sample_rate, seek=index > 0 or start > 0)
                for index, (start, frames) in enumerate(spans)
            ]
        except av.error.FFmpegError as error:
            raise DecodeError(path, "unreadable", f"corrupt: {_message(error)}") from None


def _open(path: Path) -> av.container.InputContainer:
    try:
        return av.open(str(path), mode="r", metadata_errors="ignore")
    except FileNotFoundError:
        raise DecodeError(path, "missing", "no such file") from None
    except av.error.InvalidDataError:
        raise DecodeError(path, "unsupported", "format not recognised") from None
    except (av.error.FFmpegError, OSError) as error:
        raise DecodeError(path, "unreadable", _message(error)) from None


def _audio_stream(path: Path, container: av.container.InputContainer) -> av.audio.stream.AudioStream:
    if not container.streams.audio:
        raise DecodeError(path, "unsupported", "no audio stream")
    stream = container.streams.audio[0]
    if stream.codec_context.sample_rate <= 0 or _channels(stream) <= 0:
        raise DecodeError(path, "unsupported", f"{stream.codec_context.name}: no sample rate or channel layout")
    return stream


def _channels(stream: av.audio.stream.AudioStream) -> int:
    return int(stream.codec_context.channels)


def _duration(path: Path, container: av.container.InputContainer, stream: av.audio.stream.AudioStream) -> float:
    """The announced duration: the stream's, else the container's, else (rare: raw streams) counted by decoding."""
    if stream.duration and stream.time_base:
        duration = float(stream.duration * stream.time_base)
    elif container.duration:
        duration = container.duration / av.time_base
    else:
        duration = sum(frame.samples for frame in container.decode(stream)) / stream.codec_context.sample_rate
    if duration <= 0:
        raise DecodeError(path, "empty", "no audio frames")
    return duration


def _read_span(
    container: av.container.InputContainer,
    stream: av.audio.stream.AudioStream,
    start: int,
    frames: int,
    rate: int,
    seek: bool,
) -> np.ndarray:
    if seek:
        preroll = max(0, start - round(SEEK_PREROLL_SECONDS * rate))
        container.seek(int(preroll / rate / stream.time_base), stream=stream, backward=True)
    end = start + frames
    parts: list[np.ndarray] = []
    position: int | None = None
    for frame in _frames(container, stream):
        position = _frame_position(frame, position, rate)
        mono = _frame_mono(frame)
        keep_from, keep_to = max(0, start - position), min(mono.size, end - position)
        if keep_to > keep_from:
            parts.append(mono[keep_from:keep_to])
        position += mono.size
        if position >= end:
            break
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)


def _frame_position(frame: av.AudioFrame, counted: int | None, rate: int) -> int:
    """Where a frame starts, in samples: its timestamp after a seek or a gap, else the count so far (timestamps in
    milliseconds, as WebM and ASF keep them, are too coarse to place frames end to end)."""
    if frame.pts is None:
        return counted or 0
    stamped = round(float(frame.pts * frame.time_base) * rate)
    if counted is None or abs(stamped - counted) > TIMESTAMP_TOLERANCE_SECONDS * rate:
        return stamped
    return counted


def _frames(container: av.container.InputContainer, stream: av.audio.stream.AudioStream) -> Iterator[av.AudioFrame]:
    """Decoded frames from the current position; a damaged packet is skipped and damaged data at the end stops
    the decoding (a file that loses much of its audio either way is caught as truncated)."""
    packets = container.demux(stream)
    while True:
        try:
            packet = next(packets)
        except (StopIteration, av.error.InvalidDataError, av.error.EOFError):
            return
        try:
            yield from packet.decode()
        except av.error.InvalidDataError:
            continue


def _frame_mono(frame: av.AudioFrame) -> np.ndarray:
    """One decoded frame as mono float32, whatever its sample format (planar or packed, integer or float)."""
    array = frame.to_ndarray()
    channels = frame.layout.nb_channels
    samples = array.T if frame.format.is_planar else array.reshape(-1, channels)  # [frames, channels]
    return downmix(_as_float32(samples))


def _as_float32(samples: np.ndarray) -> np.ndarray:
    if samples.dtype == np.uint8:
        return (samples.astype(np.float32) - 128.0) / 128.0
    if samples.dtype in INTEGER_FULL_SCALE:
        return (samples / INTEGER_FULL_SCALE[samples.dtype]).astype(np.float32)
    return samples.astype(np.float32, copy=False)


def _message(error: Exception) -> str:
    return (getattr(error, "strerror", None) or str(error)).strip().rstrip(".")

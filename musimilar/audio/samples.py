"""What both decoders share: the header a file announces, the down-mix, and the checks on what was decoded."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from musimilar.errors import DecodeError

BLOCK_SECONDS = 30.0  # decode in blocks so a long file never sits in memory at its native rate and channel count
TRUNCATION_TOLERANCE = 0.98  # decoding less than this share of the announced frames means a damaged file...
TRUNCATION_SLACK_SECONDS = 0.25  # ...and missing more than this: containers announce encoder delay and padding too
SILENCE_DBFS = -70.0  # a kept part quieter than this (RMS, dB below full scale) holds nothing to listen to


@dataclass(frozen=True)
class AudioInfo:
    """What the file announces about itself."""

    duration: float  # seconds, whole file
    sample_rate: int  # native Hz
    channels: int
    decoder: str = "libsndfile"  # or "ffmpeg"


Span = tuple[int, int]  # (first frame, frames) at the native rate


def downmix(chunk: np.ndarray) -> np.ndarray:
    """[frames, channels] -> [frames], the mean of the channels. A matrix-vector product: numpy's mean over the short
    channel axis is about 100 times slower, as slow as decoding itself."""
    channels = chunk.shape[1]
    if channels == 1:
        return np.ascontiguousarray(chunk[:, 0])
    return chunk @ np.full(channels, 1.0 / channels, dtype=np.float32)


def check_decoded(path: Path, info: AudioInfo, decoded: list[np.ndarray], spans: list[Span], strict: bool) -> None:
    """Reject damaged decodes. `strict` rejects a file that ends well before its header says (truncated); segments
    read near the end tolerate its rounding."""
    for samples, (_, frames) in zip(decoded, spans):
        missing = frames - samples.size
        if strict and samples.size > 0 and _is_truncated(missing, frames, info.sample_rate):
            raise DecodeError(
                path,
                "truncated",
                f"decoded {samples.size / info.sample_rate:.1f} s of {frames / info.sample_rate:.1f} s",
            )
        if not np.all(np.isfinite(samples)):
            raise DecodeError(path, "unreadable", "corrupt: decoded samples are not finite")


def _rms(samples: np.ndarray, block: int = 1 << 20) -> float:
    """Root mean square, summed block by block (a float64 copy of ten minutes at 44.1 kHz would take 200 MB)."""
    if samples.size == 0:
        return 0.0
    energy = sum(float(np.dot(part, part)) for part in (samples[i : i + block] for i in range(0, samples.size, block)))
    return float(np.sqrt(energy / samples.size))


def _is_truncated(missing: int, frames: int, sample_rate: int) -> bool:
    return missing > (1 - TRUNCATION_TOLERANCE) * frames and missing > TRUNCATION_SLACK_SECONDS * sample_rate


def check_audible(path: Path, samples: np.ndarray) -> None:
    """Digital silence and near-silence carry no sound to compare: recorded as 'silent', never embedded."""
    rms = _rms(samples)
    level = 20.0 * np.log10(rms) if rms > 0 else -np.inf
    if level < SILENCE_DBFS:
        shown = "digital silence" if rms == 0 else f"{level:.0f} dBFS RMS"
        raise DecodeError(path, "silent", f"{shown} (below {SILENCE_DBFS:g} dBFS)")
